"""The ``synth-ray`` command.

synth-ray run CONFIG.yaml [--set dotted.key=value ...]   run a job (local Ray, or RAY_ADDRESS)
synth-ray validate CONFIG.yaml [--set ...]               check a config, print it resolved
synth-ray tiny-model PATH                                write the tiny random test model
synth-ray models                                         the named models (tiny, smollm2-135m, ...)
synth-ray build-model NAME [--cache-dir DIR]             build a named model now, print its folder
synth-ray show OUTPUT_DIR [--n 3]                        a WRAP run's rephrasings beside their source
synth-ray dedup IN OUT --field instruction [--threshold 0.7]   ROUGE-L novelty filter
synth-ray export RUN_DIR --format alpaca|messages [--out PATH] [--system-prompt TEXT]
                                                         a run's dataset/ for finetuning tools
synth-ray serve SERVE_CONFIG.yaml [--port P] [--set ...]  the scoring service (Ray Serve)
synth-ray lineage OUTPUT_DIR                             a loop's iterations, one line each
synth-ray methods | engines | tasks                      list what is registered
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _cmd_run(args) -> int:
    from synth_ray.runner import load_job_config, run_job

    config = load_job_config(args.config, args.set)
    record = run_job(config)
    summary = {
        k: record[k]
        for k in (
            "status",
            "run_id",
            "output_dir",
            "counts",
            "tokens",
            "timings_s",
            "engine_starts",
        )
    }
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_validate(args) -> int:
    from synth_ray.runner import load_job_config, prepare

    config = load_job_config(args.config, args.set)
    if args.check_model:
        prepare(config)
    print(json.dumps(config.model_dump(mode="json"), indent=2))
    return 0


def _cmd_tiny(args) -> int:
    from synth_ray.models.tiny import build_tiny_model

    path = build_tiny_model(args.path)
    print(path)
    return 0


def _cmd_models(args) -> int:
    from synth_ray.models.resolve import NAMED_MODELS

    for m in NAMED_MODELS.values():
        folder = m.cache_folder(args.cache_dir)
        state = "built" if folder.is_dir() else "built on first use"
        print(f"{m.name:14s} {m.what}; {m.size}; {state} in {folder}")
    return 0


def _cmd_build_model(args) -> int:
    from synth_ray.config import ConfigError
    from synth_ray.models.resolve import NAMED_MODELS, ModelNotFoundError

    if args.name not in NAMED_MODELS:
        raise ConfigError(f"unknown model {args.name!r}: one of {', '.join(NAMED_MODELS)}")
    try:
        print(NAMED_MODELS[args.name].path(args.cache_dir))
    except ModelNotFoundError as exc:
        raise ConfigError(f"field 'model': {exc}") from None
    return 0


def _cmd_show(args) -> int:
    from synth_ray.methods.wrap.show import show_rephrasings

    try:
        print(show_rephrasings(args.output_dir, args.n, args.width))
    except (FileNotFoundError, ValueError) as exc:
        print(f"synth-ray: show error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_dedup(args) -> int:
    from synth_ray.filters.dedup import dedup

    print(json.dumps(dedup(args.input, args.output, args.field, args.threshold)))
    return 0


def _cmd_export(args) -> int:
    from synth_ray.export import default_out_path, export

    out = args.out or default_out_path(args.run_dir, args.format)
    try:
        counts = export(args.run_dir, out, args.format, system_prompt=args.system_prompt)
    except (FileNotFoundError, ValueError) as exc:
        print(f"synth-ray: export error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(counts, ensure_ascii=False))
    return 0


def _cmd_lineage(args) -> int:
    from synth_ray.loops.base import lineage_lines

    try:
        lines = lineage_lines(args.output_dir)
    except FileNotFoundError as exc:
        print(f"synth-ray: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _cmd_serve(args) -> int:
    import signal
    import threading

    import ray

    from synth_ray.serve.run import deploy, load_serve_config

    config = load_serve_config(args.config, host=args.host, port=args.port, set_args=args.set)
    if args.check:
        print(json.dumps(config, indent=2))
        return 0
    url = deploy(config, address=args.address)
    print(
        f"synth-ray: serving {', '.join(a['name'] for a in config['applications'])} at {url} "
        "(Ctrl-C stops)",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, `ray job stop`, a pod's termination
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(5):
        pass
    if args.address or os.environ.get("RAY_ADDRESS"):
        # A cluster we joined: take our applications down (bounded: never hang on exit).
        from ray import serve

        t = threading.Thread(target=serve.shutdown, daemon=True)
        t.start()
        t.join(60)
    else:
        ray.shutdown()  # our embedded Ray, Serve and its replicas with it
    print("synth-ray: stopped", flush=True)
    return 0


def _cmd_list(args) -> int:
    if args.cmd == "methods":
        from synth_ray.job import load_all_jobs

        jobs = load_all_jobs()
        for name in jobs.names():
            cls = jobs.get(name)
            doc = (cls.__doc__ or "").strip().splitlines()
            print(f"{name:<22} {cls.kind:<10} {doc[0] if doc else ''}".rstrip())
    elif args.cmd == "tasks":
        from synth_ray.tasks import TASKS

        for name in TASKS.names():
            doc = (TASKS.get(name).__doc__ or "").strip().splitlines()
            print(f"{name:<22} {doc[0] if doc else ''}".rstrip())
    else:
        from synth_ray.engines import ENGINES

        for name in ENGINES.names():
            print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synth-ray", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (
        ("run", _cmd_run, "run a job config"),
        ("validate", _cmd_validate, "validate a job config"),
    ):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("config", help="job config YAML (see jobs/)")
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a field, e.g. --set engine.replicas=2 (repeatable)",
        )
        if name == "validate":
            sp.add_argument("--check-model", action="store_true", help="also resolve the model")
        sp.set_defaults(fn=fn)
    sp = sub.add_parser("tiny-model", help="write the tiny random model (no network)")
    sp.add_argument("path")
    sp.set_defaults(fn=_cmd_tiny)
    sp = sub.add_parser("models", help="list the named models, what they are and where built")
    sp.add_argument(
        "--cache-dir", help="cache folder (default: $SYNTH_RAY_CACHE, ~/.cache/synth-ray)"
    )
    sp.set_defaults(fn=_cmd_models)
    sp = sub.add_parser("build-model", help="build a named model into the cache now")
    sp.add_argument("name", help="a name from `synth-ray models`")
    sp.add_argument(
        "--cache-dir", help="cache folder (default: $SYNTH_RAY_CACHE, ~/.cache/synth-ray)"
    )
    sp.set_defaults(fn=_cmd_build_model)
    sp = sub.add_parser("show", help="print a WRAP run's rephrasings beside their source chunk")
    sp.add_argument("output_dir", help="a WRAP run's output directory (reads OUTPUT_DIR/data/)")
    sp.add_argument("--n", type=int, default=3, help="chunks to show (default 3)")
    sp.add_argument("--width", type=int, default=400, help="characters per text (default 400)")
    sp.set_defaults(fn=_cmd_show)
    sp = sub.add_parser("dedup", help="ROUGE-L novelty filter (Self-Instruct) over JSONL/Parquet")
    sp.add_argument("input")
    sp.add_argument("output", help="kept rows; rejects go to <stem>.rejects<suffix>")
    sp.add_argument(
        "--field", default="instruction", help="text field compared (default: instruction)"
    )
    sp.add_argument("--threshold", type=float, default=0.7, help="keep when ROUGE-L <= this (0.7)")
    sp.set_defaults(fn=_cmd_dedup)
    sp = sub.add_parser(
        "export",
        help="export a run's dataset/ (Alpaca JSON, chat JSONL) or preferences/ (JSONL)",
    )
    sp.add_argument(
        "run_dir",
        help="a run's output directory (reads RUN_DIR/dataset/, or RUN_DIR/preferences/; "
        "for a loop, an iteration's folder OUTPUT_DIR/iter_<t>)",
    )
    sp.add_argument(
        "--format",
        required=True,
        choices=["alpaca", "messages", "preferences"],
        help="alpaca: JSON list of instruction/input/output; messages: JSONL of chats; "
        "preferences: JSONL of prompt/chosen/rejected (TRL DPOTrainer, RewardTrainer)",
    )
    sp.add_argument("--out", help="output file (default: RUN_DIR/export/<format file>)")
    sp.add_argument(
        "--system-prompt", help="messages only: a system turn leading every conversation"
    )
    sp.set_defaults(fn=_cmd_export)
    sp = sub.add_parser(
        "lineage", help="a loop's iterations: models and fingerprints, data in and out, metrics"
    )
    sp.add_argument("output_dir", help="a loop job's OUTPUT_DIR (reads iter_<t>/manifest.json)")
    sp.set_defaults(fn=_cmd_lineage)
    sp = sub.add_parser(
        "serve", help="start the scoring service from a Serve config (serve/config.yaml)"
    )
    sp.add_argument("config", help="Serve config YAML (see serve/)")
    sp.add_argument("--host", help="override http_options.host")
    sp.add_argument("--port", type=int, help="override http_options.port")
    sp.add_argument(
        "--address", help="Ray cluster to deploy to (default: RAY_ADDRESS, else a local Ray)"
    )
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an app arg, e.g. --set judge=null (repeatable)",
    )
    sp.add_argument(
        "--check", action="store_true", help="validate and print the config, start nothing"
    )
    sp.set_defaults(fn=_cmd_serve)
    for name in ("methods", "engines", "tasks"):
        sub.add_parser(name, help=f"list registered {name}").set_defaults(fn=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from synth_ray.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"synth-ray: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
