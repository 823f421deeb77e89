"""Load on the scoring service's /v1/reward: dynamic batching on vs off, same model, same load.

    .venv/bin/python benchmarks/serve_load.py [--clients 64] [--duration 30] [--repeats 3]

The reward model: a randomly initialised ``LlamaForSequenceClassification`` (one label, the
tiny model's tokenizer), narrow and deep: hidden 128, 128 layers, 34M parameters. On these 2
vCPUs Serve's HTTP path (proxy + FastAPI ingress + handle call) costs about 20 ms of CPU per
request, and this model's batch-1 forward pass takes 70-90 ms (printed at the start, measured
in-process), so the forward pass, not HTTP handling, dominates an unbatched request, as with a
real reward model. The shape is chosen for the regime a real reward model is in on a GPU: at
batch 1 its time goes to per-layer overhead (kernel launches there, op dispatch here), which
batching amortises; a wide, shallow model of the same size is compute-bound at batch 1 on a
CPU and gains little (the README has the figures). Items are short (prompt + response, 17-24
tokens in the chat template).

Two applications of ``synth_ray.serve.app:build_app`` run side by side on one embedded Ray (one
reward replica each, 2 torch threads, same resources), differing only in ``reward.batching``:

- batched:   ``@serve.batch`` (``--max-batch`` 64, ``--batch-wait`` 0.1 s);
- unbatched: one forward pass per item.

The load comes from a second process (``--client``): N concurrent clients (asyncio + aiohttp),
each sending one-item requests back to back for ``--duration`` seconds, after a warm-up.
Every request sent is accounted for (status counts; any non-200 is reported). Prints the
model's own batch-1 and batch-N times, requests/s, p50/p99 latency for each side and the ratio
of each (unbatched, batched) pair, run alternately ``--repeats`` times; last line
``ratio=<median of the pairs>``. ``--client URL`` runs only the load generator, against any
running service (bearer token from ``$SYNTH_RAY_SERVE_TOKEN`` when set).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Short (prompt, response) pairs, 17-24 tokens in the chat template (see the README for why).
SHORT = [
    ("What is 2+2?", "4."),
    ("Name a primary colour.", "Red."),
    ("Capital of France?", "Paris."),
    ("Is 7 prime?", "Yes."),
    ("Opposite of hot?", "Cold."),
    ("Say hello.", "Hello!"),
    ("Largest ocean?", "The Pacific."),
    ("Spell cat.", "C-A-T."),
]
SENTENCES = [
    "Explain why the sky is blue in two sentences.",
    "Write a short poem about the sea at night.",
    "What are three benefits of regular exercise?",
    "Summarise the plot of a heist movie without naming it.",
    "Give me a recipe for a quick vegetable soup.",
    "How does a bicycle stay upright while moving?",
    "List four uses of a paperclip besides holding paper.",
    "Describe the water cycle to a ten year old.",
]


# -- the load generator (second process) -------------------------------------------------------


def _item(rng: random.Random, long: bool) -> dict:
    if long:
        return {"prompt": rng.choice(SENTENCES), "response": " ".join(rng.sample(SENTENCES, 2))}
    prompt, response = rng.choice(SHORT)
    return {"prompt": prompt, "response": response}


async def _load(
    url: str, clients: int, duration: float, warmup: float, seed: int, long: bool
) -> dict:
    """N clients, each one keep-alive connection sending requests back to back (aiohttp: a
    light client, so the load generator does not eat the cores the service runs on)."""
    import aiohttp

    rng = random.Random(seed)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sent = 0
    connector = aiohttp.TCPConnector(limit=clients)
    token = os.environ.get("SYNTH_RAY_SERVE_TOKEN")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        t_measure = time.perf_counter() + warmup
        t_end = t_measure + duration

        async def one_client() -> None:
            nonlocal sent
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                body = json.dumps({"items": [_item(rng, long)]}).encode()
                measured = t0 >= t_measure
                if measured:
                    sent += 1
                try:
                    async with session.post(url + "/v1/reward", data=body, headers=headers) as r:
                        reply = await r.read()
                        status = str(r.status)
                        ok = r.status == 200 and len(json.loads(reply)["results"]) == 1
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status, ok = type(exc).__name__, False
                if measured:
                    statuses[status] = statuses.get(status, 0) + 1
                    if ok:
                        latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - t_measure
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
            if latencies
            else float("nan")
        )

    return {
        "sent": sent,
        "replies": sum(statuses.values()),
        "statuses": statuses,
        "ok": len(latencies),
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def client_main(args) -> None:
    res = asyncio.run(
        _load(args.client, args.clients, args.duration, args.warmup, args.seed, args.long)
    )
    print(json.dumps(res))


# -- the driver ------------------------------------------------------------------------------


def _app(
    name: str, model: str, batching: bool, threads: int, max_batch: int = 32, wait_s: float = 0.005
) -> dict:
    return {
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": "synth_ray.serve.app:build_app",
        "args": {
            "judge": None,
            "reward": {
                "model": model,
                "batching": batching,
                "max_batch_size": max_batch,
                "batch_wait_timeout_s": wait_s,
                "torch_threads": threads,
            },
        },
        "deployments": [
            {
                "name": "Ingress",
                "num_replicas": 1,
                "max_ongoing_requests": 512,
                "ray_actor_options": {"num_cpus": 0.1},
            },
            {
                "name": "RewardModel",
                "num_replicas": 1,
                "max_ongoing_requests": 256,
                "ray_actor_options": {"num_cpus": 1},
            },
        ],
    }


def _forward_times(model: str, threads: int, batch: int) -> tuple[float, float]:
    """Seconds per forward pass of the reward model in this process: batch 1 and ``batch``."""
    from synth_ray.engines.reward_model import RewardScorer

    scorer = RewardScorer(model, torch_threads=threads)
    seqs = [scorer.tokens_for_pair(*SHORT[i % len(SHORT)]) for i in range(batch)]

    def timed(n: int, reps: int) -> float:
        scorer.score_ids(seqs[:n])  # warm
        t0 = time.perf_counter()
        for _ in range(reps):
            scorer.score_ids(seqs[:n])
        return (time.perf_counter() - t0) / reps

    return timed(1, 20), timed(batch, 3)


def run_side(url: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--client",
        url,
        "--clients",
        str(args.clients),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
    ] + (["--long"] if args.long else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per side")
    p.add_argument("--repeats", type=int, default=3, help="(unbatched, batched) pairs; median")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the reward replica")
    p.add_argument("--max-batch", type=int, default=64, help="reward.max_batch_size (batched side)")
    p.add_argument(
        "--batch-wait", type=float, default=0.1, help="reward.batch_wait_timeout_s (batched side)"
    )
    p.add_argument("--long", action="store_true", help="items of ~60 tokens instead of ~20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--client",
        metavar="URL",
        help="only the load: --clients clients against the service at URL for "
        "--duration s (with $SYNTH_RAY_SERVE_TOKEN as bearer token when set); prints "
        "one JSON line of counts and latencies",
    )
    args = p.parse_args()
    if args.client:
        return client_main(args)

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    from ray import serve
    from ray.serve.schema import LoggingConfig

    from synth_ray.models.tiny import build_tiny_reward_model
    from synth_ray.serve.run import deploy

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_reward_model(
            Path(tmp) / "rm",
            hidden_size=args.hidden,
            layers=args.layers,
            heads=args.heads,
            intermediate_size=4 * args.hidden,
        )
        from transformers import AutoConfig, AutoModelForSequenceClassification

        cfg = AutoConfig.from_pretrained(model)
        n_params = sum(
            p.numel()
            for p in AutoModelForSequenceClassification.from_pretrained(model).parameters()
        )
        print(
            f"reward model: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
            f"{n_params / 1e6:.1f}M parameters; {args.clients} clients x {args.duration:.0f} s per side"
        )
        one, many = _forward_times(str(model), args.threads, args.max_batch)
        print(
            f"model alone (in-process, {args.threads} threads): batch 1 {one * 1000:.0f} ms, "
            f"batch {args.max_batch} {many * 1000:.0f} ms = {many / args.max_batch * 1000:.1f} ms "
            f"per item ({one * args.max_batch / many:.1f}x)",
            flush=True,
        )
        with socket.socket() as sock:  # a free 127.0.0.1 port
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = {
            "http_options": {"host": "127.0.0.1", "port": port},
            "logging_config": LoggingConfig(enable_access_log=False).model_dump(),
            "applications": [
                _app("batched", str(model), True, args.threads, args.max_batch, args.batch_wait),
                _app("unbatched", str(model), False, args.threads),
            ],
        }
        base = deploy(config)
        ratios = []
        for k in range(args.repeats):  # alternate sides: drifts in machine load hit both
            results = {}
            for side in ("unbatched", "batched"):
                r = run_side(f"{base}/{side}", args)
                results[side] = r
                bad = {k: v for k, v in r["statuses"].items() if k != "200"}
                print(
                    f"[{k + 1}/{args.repeats}] {side:10s} {r['rps']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms"
                    f"  p99 {r['p99_ms']:7.1f} ms  (sent {r['sent']}, replies {r['replies']}, "
                    f"non-200 {bad or 0})",
                    flush=True,
                )
            ratios.append(results["batched"]["rps"] / results["unbatched"]["rps"])
            print(f"[{k + 1}/{args.repeats}] ratio {ratios[-1]:.2f}", flush=True)
        serve.shutdown()
    ratio = statistics.median(ratios)
    print(
        f"batched / unbatched throughput at {args.clients} clients: median of "
        f"{len(ratios)} pairs {ratio:.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
