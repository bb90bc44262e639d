"""Fuzz targets for fastws (issue #6, "Fuzzing and memory safety").

:mod:`fuzz.targets` holds one function per target, each taking arbitrary bytes
and raising (an AssertionError, or any unexpected exception) when fastws
misbehaves. The same functions run under atheris (``python -m fuzz.run``), under
a plain random mutator when atheris is missing (``--engine random``), over the
committed seed corpora in ``fuzz/corpus/<target>/`` and in the test suite
(``tests/test_fuzz_targets.py``).
"""
