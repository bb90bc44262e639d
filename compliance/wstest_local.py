"""Run ``wstest`` (Python 2.7) with every socket it listens on bound to 127.0.0.1.

The testsuite's fuzzingserver listens on all interfaces; this wrapper makes it
listen on the loopback interface only. Run it with the testsuite's interpreter,
with the usual wstest arguments (run.py also passes ``-u 0``: no web server).
"""
import sys

from autobahntestsuite import fuzzing, wstest

_listen = fuzzing.listenWS


def _listen_loopback(factory, contextFactory=None, backlog=50, interface=""):
    return _listen(factory, contextFactory, backlog, "127.0.0.1")


fuzzing.listenWS = _listen_loopback

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    sys.exit(wstest.run())
