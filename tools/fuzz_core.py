"""Long fuzz run of the sans-IO core (``yaxmpp.protocol.core.ClientProtocol``).

    python tools/fuzz_core.py --inputs 1000000 --seed 1 [--jobs 2] [--out DIR] [--minimize]
    python tools/fuzz_core.py --perf            # oracle (d): cost per byte, 1 KiB / 64 KiB / 1 MiB
    python tools/fuzz_core.py --replay FILE     # run one reproducer again

Inputs are made by ``tests/fuzz_corpus.py`` (whole mutated server transcripts, random reads,
driver calls between them) and checked by its oracles.  Prints inputs/s and the failures per
oracle as it goes; writes one reproducer per distinct failure (the case as a Python literal, with
the seed and index that made it; ``python FILE`` or ``--replay FILE`` runs it) to ``--out``
(default: ``$TMPDIR/yaxmpp-fuzz-failures``); exits 1 if anything failed.  Failures already
reported are marked with their finding number (``fuzz_corpus.KNOWN``), the others ``NEW``.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from tests import fuzz_corpus as fc  # noqa: E402

Example = Tuple[int, str, str]  # index, case literal, detail


def _batch(args: Tuple[int, int, int]) -> Tuple[int, int, float, Counter, Dict[str, Example]]:
    seed, start, stop = args
    cpu = time.process_time()
    counts: Counter = Counter()
    examples: Dict[str, Example] = {}
    size = 0
    for index in range(start, stop):
        case = fc.make_case(seed, index)
        size += len(case.data)
        for failure in fc.dedupe(fc.run_case(case)).values():
            counts[failure.signature] += 1
            if failure.signature not in examples:
                examples[failure.signature] = (index, case.literal(), failure.detail)
    return stop - start, size, time.process_time() - cpu, counts, examples


def _write(out: str, seed: int, signature: str, example: Example, minimize: bool) -> str:
    index, literal, detail = example
    name = "%s-%s.py" % (signature.split(":", 1)[0], hashlib.sha1(signature.encode()).hexdigest()[:10])
    path = os.path.join(out, name)
    small = ""
    if minimize:
        case = fc.make_case(seed, index)
        mini = fc.minimize(case, signature, budget=1500)
        small = "\n#: The same failure, minimised (bytes removed while it still fails).\nMINIMAL = %s\n" % mini.literal()
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            '"""Fuzz reproducer.\n\nsignature: %s\nseed %d, index %d (fuzz_corpus.make_case(%d, %d))\n\n%s\n"""\n'
            % (signature, seed, index, seed, index, detail.replace('"""', "'''").replace("\\", "\\\\")[:4000])
        )
        f.write("import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), %r))\n" % os.path.abspath(ROOT))
        f.write("from tests.fuzz_corpus import Case, run_case  # noqa: E402\n\n")
        f.write("SIGNATURE = %r\nCASE = %s\n%s\n" % (signature, literal, small))
        f.write(
            'if __name__ == "__main__":\n'
            "    for failure in run_case(globals().get('MINIMAL', CASE)):\n"
            "        print(failure.signature)\n        print(failure.detail)\n"
        )
    return path


def fuzz(args: argparse.Namespace) -> int:
    total, jobs = args.inputs, max(1, args.jobs)
    batch = max(1, min(500, total // (jobs * 4) or 1))
    tasks = [(args.seed, i, min(total, i + batch)) for i in range(args.start, args.start + total, batch)]
    tasks = [(s, a, min(b, args.start + total)) for s, a, b in tasks]
    counts: Counter = Counter()
    examples: Dict[str, Example] = {}
    done = size = 0
    cpu = 0.0
    began = time.time()
    last = began
    pool: Optional[Any] = multiprocessing.Pool(jobs) if jobs > 1 else None
    results = pool.imap_unordered(_batch, tasks) if pool is not None else map(_batch, tasks)
    try:
        for n, nbytes, spent, c, ex in results:
            done += n
            size += nbytes
            cpu += spent
            counts.update(c)
            for sig, e in ex.items():
                examples.setdefault(sig, e)
            now = time.time()
            if now - last >= args.every or done == total:
                last = now
                rate = done / (now - began)
                per: Counter = Counter()
                for sig, k in counts.items():
                    per[sig.split(":", 1)[0]] += k
                print(
                    "%9d inputs  %7.0f inputs/s  %5.2f ms CPU/input  %5.1f KiB/input  %d distinct  %s"
                    % (done, rate, cpu / done * 1000, size / done / 1024, len(counts), " ".join("%s=%d" % kv for kv in sorted(per.items())) or "no failures"),
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    elapsed = time.time() - began
    print(
        "\n%d inputs in %.0f s: %.0f inputs/s on %d job(s), %.2f ms CPU per input (%.0f inputs/s per idle core); %.1f MiB of server bytes"
        % (done, elapsed, done / elapsed, jobs, cpu / done * 1000, done / cpu, size / 2**20)
    )
    if not counts:
        print("no failures")
        return 0
    os.makedirs(args.out, exist_ok=True)
    print("\nfailures (inputs that hit each, the finding it was reported as, one reproducer each in %s):" % args.out)
    for sig, k in sorted(counts.items(), key=lambda kv: (kv[0].split(":", 1)[0], -kv[1])):
        path = _write(args.out, args.seed, sig, examples[sig], args.minimize)
        print("%8d  %-6s %s  -> %s" % (k, fc.known(sig) or "NEW", sig, os.path.basename(path)))
    return 1


# -- oracle (d): cost per byte flat in input size ---------------------------------------------


def _established(limits: Optional[Any] = None, step: str = "established") -> Any:
    from yaxmpp.protocol.core import ClientProtocol
    from yaxmpp.protocol.sasl import XYandexOAuth

    h = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
    p = ClientProtocol(XYandexOAuth(fc.LOGIN, fc.TOKEN), tls=True, limits=limits)
    p._new_id = lambda prefix: prefix + "1"  # the seed's bind_1 and session_1 (ids are random)
    p.initiate()
    p.receive_data(h + b"<stream:features/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    features = h + b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    if step == "bind":
        # Still negotiating: reads go through feed_until_stanza, a piece per '>'.
        p.receive_data(features)
        p.data_to_send()
        return p
    p.receive_data(
        features + b"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>test@ya.ru/r</jid></bind></iq>"
        b"<iq type='result' id='session_1'/>"
    )
    assert p.established
    p.data_to_send()
    return p


_WORDS = ("ya.ru", "test@ya.ru/r", "photo 2026.jpg", "ü日本", "a&amp;b", "&lt;x&gt;", "x" * 300)


def _valid_stanza(rng: random.Random, counter: List[int]) -> bytes:
    """Well-formed session traffic: mostly Disk pushes, some pings, messages, presences."""
    counter[0] += 1
    n = counter[0]
    r = rng.random()
    word = rng.choice(_WORDS)
    if r < 0.7:
        ops = "".join(
            "<op type='new' key='/disk/%s/%d' fid='%d' size='%d'/>" % (word, i, rng.randrange(10**6), rng.randrange(10**9))
            for i in range(rng.randint(1, 4))
        )
        s = "<iq type='set' id='p%d' from='ya.ru'><query xmlns='yandex:push:disk'><diff>%s</diff></query></iq>" % (n, ops)
    elif r < 0.8:
        s = "<iq from='ya.ru' type='get' id='g%d'><ping xmlns='urn:xmpp:ping'/></iq>" % n
    elif r < 0.9:
        s = "<message from='ya.ru'><body>%s</body></message>" % word
    else:
        s = "<presence from='%s'/>\n" % ("test@ya.ru/r" if word.startswith("x") else "ya.ru")
    return s.encode("utf-8")


def _traffic(shape: str, size: int, rng: random.Random) -> bytes:
    if shape == "bind-step":
        shape = "session"  # the same traffic, to a core still waiting for its bind result
    parts: List[bytes] = []
    n = 0
    counter = [0]
    if shape == "long-text":
        return b"<message><body>" + b"t" * size + b"</body></message>"
    if shape in ("long-attr", "long-comment"):
        # Tags as long as the input, up to just under the default max_tag_bytes (16 KiB).
        tag = min(size, 15000)
        unit = b"<message a='" + b"v" * tag + b"'/>" if shape == "long-attr" else b"<message><!--" + b"c" * tag + b"--></message>"
        return unit * max(1, size // len(unit))
    while n < size:
        if shape == "comments":
            s = b"<message><!--" + b"c" * rng.randint(100, 8000) + b"--><body>x</body></message>"
        elif shape == "deep":
            d = rng.randint(1, 30)
            s = b"<message>" + b"<a>" * d + b"x" + b"</a>" * d + b"</message>"
        else:
            s = _valid_stanza(rng, counter)
        parts.append(s)
        n += len(s)
    return b"".join(parts)


def _cost(shape: str, size: int, chunk: Tuple[int, int], total: int) -> float:
    """Process-time seconds per MiB of ``shape`` traffic in pieces of ``chunk`` bytes."""
    from yaxmpp.protocol.limits import Limits

    rng = random.Random(size)
    reps = max(1, total // size)
    datas = [_traffic(shape, size, rng) for _ in range(reps)]
    cuts = []
    for data in datas:
        pieces = []
        i = 0
        while i < len(data):
            j = i + rng.randint(*chunk)
            pieces.append(data[i:j])
            i = j
        cuts.append(pieces)
    limits = Limits(max_stanza_bytes=4 << 20)
    if shape == "bind-step":
        cores = [_established(limits, "bind") for _ in range(reps)]
    else:
        cores = [_established(limits) for _ in range(reps)]
    nbytes = sum(len(d) for d in datas)
    spent = 0.0
    for core, pieces in zip(cores, cuts):
        t0 = time.process_time()
        for piece in pieces:
            events = core.receive_data(piece)
            for event in events:
                if isinstance(event, fc.PushesReceived):
                    core.acknowledge_all(event, len(event))
                elif isinstance(event, fc.StreamClosed):
                    raise AssertionError("%s: %r" % (shape, event.error))
            core.data_to_send()
        spent += time.process_time() - t0
    return spent / nbytes * 2**20


def perf(args: argparse.Namespace) -> int:
    sizes = [(1 << 10, "1 KiB"), (64 << 10, "64 KiB"), (1 << 20, "1 MiB")]
    shapes: List[Tuple[str, Tuple[int, int]]] = [
        ("session", (1, 4096)),
        ("session", (1, 32)),
        ("bind-step", (1, 4096)),
        ("comments", (1, 64)),
        ("deep", (1, 512)),
        ("long-text", (256, 256)),
        ("long-attr", (16, 16)),
        ("long-comment", (16, 16)),
    ]
    worst = 0.0
    print("oracle (d): process time per MiB of traffic to an established core (bind-step: one still negotiating), %d MiB per size" % args.perf_mib)
    print("%-22s %12s %12s %12s   %s" % ("shape (read sizes)", *(label for _, label in sizes), "ratio 64K/1K, 1M/1K"))
    for shape, chunk in shapes:
        costs = [_cost(shape, size, chunk, args.perf_mib << 20) for size, _ in sizes]
        r1, r2 = costs[1] / costs[0], costs[2] / costs[0]
        worst = max(worst, r1, r2)
        print(
            "%-22s %10.3f s %10.3f s %10.3f s   %.2f, %.2f"
            % ("%s (%d-%d)" % (shape, chunk[0], chunk[1]), costs[0], costs[1], costs[2], r1, r2),
            flush=True,
        )
    print("worst ratio %.2f (flat: below %.1f)" % (worst, args.perf_limit))
    return 0 if worst < args.perf_limit else 1


def replay(path: str) -> int:
    scope: Dict[str, Any] = {"__file__": path, "__name__": "replay"}
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), scope)  # noqa: S102 - our own reproducer files
    failures = fc.run_case(scope.get("MINIMAL") or scope["CASE"])
    for failure in failures:
        print(failure.signature)
        print(failure.detail)
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first input index (to resume or split a run)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--out", default=os.path.join(tempfile.gettempdir(), "yaxmpp-fuzz-failures"), help="where reproducers go"
    )
    parser.add_argument("--every", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--minimize", action="store_true", help="also shrink each reproducer (slow)")
    parser.add_argument("--perf", action="store_true", help="run oracle (d) instead")
    parser.add_argument("--perf-mib", type=int, default=2, help="MiB of traffic per size for --perf")
    parser.add_argument("--perf-limit", type=float, default=2.0, help="largest acceptable cost ratio for --perf")
    parser.add_argument("--replay", help="run one reproducer file")
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    if args.perf:
        return perf(args)
    return fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
