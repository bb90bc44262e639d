"""Chat-like JSON payloads for the compression group, generated deterministically.

A chat message is a compact JSON object such as ``{"type":"message",
"room":"general","user":"alice","text":"see you at ten","ts":1700000123}``:
the keys repeat, the values vary (rooms, users, sentences of a few hundred
common words with now and then a number, a link or an emoji). The 32 B payload
is one tiny object, the 1 MiB payload a JSON array of such messages; both come
in two versions (A and B), which the echo alternates so that an echo of the
previous message fails the check.
"""

from __future__ import annotations

import json
import random
from typing import Dict, List, Tuple

SMALL = 32  #: bytes of the round-trip payload
LARGE = 1 << 20  #: bytes of the throughput payload (1 MiB)

_USERS = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil trent"
    " victor walter yasmin zoe ada linus ken dennis barbara"
).split()
_ROOMS = "general random dev ops design support release frontend backend on-call".split()
_TYPES = ("message",) * 12 + ("edit", "reaction", "typing", "join", "leave")
_WORDS = (
    "the a to and of is in it you that was for on are with as I his they be at one have this from or had by"
    " hot word but what some we can out other were all there when up use your how said an each she which do"
    " their time if will way about many then them would like so these her long make thing see him two has"
    " look more day could go come did number sound no most people my over know water than call first who may"
    " down side been now find any new work part take get place made live where after back little only round"
    " deploy build server client message latency error retry cache queue socket ok thanks lunch meeting"
    " tomorrow today review merge branch release ticket bug fix test green red flaky pipeline staging prod"
    " rollback hotfix config docker kubernetes node pod memory cpu disk alert pager incident postmortem"
    " coffee weekend friday monday standup sprint demo customer feedback dashboard graph metric"
).split()
_EXTRAS = ("🎉", "👍", ":)", "lol", "+1", "https://example.com/pr/{n}", "#{n}", "{n}ms", "v1.{n}", "@{user}")


def _text(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(1, 28)):
        if rng.random() < 0.08:
            extra = rng.choice(_EXTRAS)
            words.append(extra.format(n=rng.randint(1, 9999), user=rng.choice(_USERS)))
        else:
            words.append(rng.choice(_WORDS))
    text = " ".join(words)
    return text[0].upper() + text[1:] if text else text


def chat_message(rng: random.Random, index: int) -> dict:
    """One chat event, as a dict ready for ``json.dumps``."""
    kind = rng.choice(_TYPES)
    message = {
        "type": kind,
        "id": 1_000_000 + index,
        "room": rng.choice(_ROOMS),
        "user": rng.choice(_USERS),
        "ts": 1_700_000_000_000 + index * 731 + rng.randint(0, 700),
    }
    if kind in ("message", "edit"):
        message["text"] = _text(rng)
    elif kind == "reaction":
        message["emoji"] = rng.choice(("👍", "🎉", "❤️", "😂", "👀"))
        message["target"] = 1_000_000 + rng.randint(0, max(index, 1))
    if rng.random() < 0.1:
        message["reply_to"] = 1_000_000 + rng.randint(0, max(index, 1))
    return message


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def small_payload(seed: int) -> bytes:
    """One tiny JSON object of exactly :data:`SMALL` bytes:
    ``{"user":"bob","text":"ok see you"}``, its text cut or padded to fit."""
    rng = random.Random(seed)
    user = rng.choice([u for u in _USERS if len(u) <= 5])
    head = _dumps({"user": user, "text": ""})[:-3]  # '{"user":"bob","text":'
    room = SMALL - len(head.encode()) - 3  # the quotes and the closing brace
    words: List[str] = []
    while len(" ".join(words)) < room:
        words.append(rng.choice(_WORDS))
    text = " ".join(words)[:room].rstrip().ljust(room, "!")
    data = f'{head}"{text}"}}'.encode()
    assert len(data) == SMALL, len(data)
    json.loads(data)
    return data


def large_payload(seed: int, size: int = LARGE) -> bytes:
    """A JSON array of chat messages of exactly ``size`` bytes (UTF-8): whole
    messages, then one last message whose text pads the array to the size."""
    rng = random.Random(seed)
    parts: List[str] = []
    total = 1  # "["
    index = 0
    while True:
        item = _dumps(chat_message(rng, index)).encode()
        # Room for this item and a final padding message (~120 bytes) after it.
        if total + len(item) + 1 + 160 > size:
            break
        parts.append(item.decode())
        total += len(item) + 1  # the comma (or the closing bracket)
        index += 1
    last: Dict[str, object] = {"type": "message", "id": 1_000_000 + index, "room": "general", "user": "alice"}
    last["text"] = ""
    fill = size - total - len(_dumps(last).encode()) - 1  # the closing bracket
    # ASCII only, so that characters are bytes; padded with dots to the size.
    text = (_text(random.Random(index)) * 50).encode()[:fill].decode("ascii", "ignore")
    last["text"] = text.ljust(fill, ".") if fill > 0 else ""
    parts.append(_dumps(last))
    data = ("[" + ",".join(parts) + "]").encode()
    assert len(data) == size, (len(data), size)
    return data


def payloads(size: int) -> Tuple[bytes, bytes]:
    """The two payloads (A, B) of ``size`` bytes: :data:`SMALL` or any larger size."""
    if size == SMALL:
        first, second = small_payload(1), small_payload(2)
    else:
        first, second = large_payload(1, size), large_payload(2, size)
    assert first != second
    return first, second
