#!/usr/bin/env python
"""Every env that a jaxppo suite registers, run briefly from the command line: trained, refused in
one line, or crashed.

    python experiments/sweep_suites.py --jobs 2                        # every env of every suite
    python experiments/sweep_suites.py --suites pgx,navix --sample 3  # 3 envs per suite
    python experiments/sweep_suites.py --rerun crashed --jobs 2       # again, the ones that crashed
    python experiments/sweep_suites.py --docs-only                    # docs/suites.md from the JSON

The ids come from each suite's own registry: Playground's dm_control suite, locomotion and
manipulation registries; brax's ``envs._envs``; ``jumanji.registered_environments()``; craftax's
ids (craftax registers none: the ids its ``make_craftax_env_from_name`` accepts without auto-reset,
which are the adapter's); every id of ``pgx.EnvId`` (the games for several players are refused);
``navix.registry()``; ``xminigrid.registered_environments()``. Each runs in its own process::

    python -m jaxppo.run --env SUITE/NAME --seeds 1 --num-envs 2 --num-steps 64 \\
        --total-timesteps 256 --no-progress --out DIR

(two iterations, and a checkpoint at the end) with a timeout, and is classified as

- ``trained``: exit status 0 and a complete checkpoint in DIR;
- ``refused``: exit status 2 and one stderr line, ``python -m jaxppo.run: error: ...``, no traceback;
- ``crashed``: anything else (the last lines of its output are kept).

The children compile with ``FAST_COMPILE_FLAGS`` in ``XLA_FLAGS`` (``--no-fast-compile``: XLA's
defaults). brax envs run on brax's default backend (``generalized``), which with these flags
compiles in under a minute per env on 2 cores (``positional``, up to twice as fast:
``--brax-backend positional`` passes it to every brax env that takes it). Each child has an
empty compilation cache of its own, so every env compiles cold. Writes the results as JSON
(``--out``), the per-suite table to stdout, and ``docs/suites.md`` from the JSON (``--docs``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "experiments" / "results" / "suite_sweep.json"
DEFAULT_DOCS = ROOT / "docs" / "suites.md"
SUITES = ("playground", "brax", "jumanji", "craftax", "pgx", "navix", "xminigrid")
PROG = "python -m jaxppo.run"
ERROR_PREFIX = f"{PROG}: error:"
RUN_ARGS = ("--seeds", "1", "--num-envs", "2", "--num-steps", "64", "--total-timesteps", "256", "--no-progress")
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
DEFAULT_TIMEOUT_S = 600.0  # a Playground humanoid compiles for minutes on 2 cores
TAIL_LINES = 6  # of a crash's output, kept in its message
STATUSES = ("trained", "refused", "crashed")


# ----------------------------------------------------------------------------- registries
def _playground_envs() -> list[str]:
    from mujoco_playground import dm_control_suite, locomotion, manipulation

    return [*dm_control_suite.ALL_ENVS, *locomotion.ALL_ENVS, *manipulation.ALL_ENVS]


def _brax_envs() -> list[str]:
    from brax import envs

    return sorted(envs._envs)  # brax's registry is private; get_environment reads it


def _jumanji_envs() -> list[str]:
    import jumanji

    return sorted(jumanji.registered_environments())


def _craftax_envs() -> list[str]:
    from jaxppo.suites import craftax

    return list(craftax.ENVS)  # craftax registers none: these are the ids its make_craftax_env_from_name makes


def _pgx_envs() -> list[str]:
    import typing

    import pgx

    return list(typing.get_args(pgx.EnvId))


def _navix_envs() -> list[str]:
    import navix

    return sorted(navix.registry())


def _xminigrid_envs() -> list[str]:
    import xminigrid

    return list(xminigrid.registered_environments())


REGISTRIES = {
    "playground": (_playground_envs, "mujoco_playground: dm_control_suite, locomotion and manipulation ALL_ENVS"),
    "brax": (_brax_envs, "brax.envs._envs"),
    "jumanji": (_jumanji_envs, "jumanji.registered_environments()"),
    "craftax": (_craftax_envs, "the ids craftax.craftax_env.make_craftax_env_from_name makes (no registry)"),
    "pgx": (_pgx_envs, "pgx.EnvId (every game; those for several players are refused)"),
    "navix": (_navix_envs, "navix.registry()"),
    "xminigrid": (_xminigrid_envs, "xminigrid.registered_environments()"),
}


def registered_envs(suite: str) -> list[str]:
    """The env ids (``suite/name``) that ``suite`` registers, in its registry's order."""
    return [f"{suite}/{name}" for name in REGISTRIES[suite][0]()]


def family(env_id: str) -> str:
    """A coarse family of an env id, to spread a sample: the first word of its name once the
    suite's own prefixes, sizes and versions are gone (``navix/Navix-DoorKey-5x5-v0`` -> ``Door``)."""
    name = env_id.split("/", 1)[1]
    name = re.sub(r"^(Navix-|XLand-MiniGrid-|MiniGrid-)", "", name)
    words = re.findall(r"[A-Z]?[a-z]+\d*|[A-Z]+\d*(?![a-z])|\d+", name)
    return words[0] if words else name


def sample(env_ids: list[str], n: int) -> list[str]:
    """``n`` of ``env_ids``, deterministically: one per family from families spread evenly over the
    sorted families, then the families' next members, and so on."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for env_id in env_ids:
        by_family[family(env_id)].append(env_id)
    families = sorted(by_family)
    # Families in an order that spreads any prefix of it: evenly spaced over the sorted list.
    order = sorted(range(len(families)), key=lambda k: (_spread_rank(k, len(families)), k))
    chosen: list[str] = []
    depth = 0
    while len(chosen) < min(n, len(env_ids)):
        for k in order:
            members = by_family[families[k]]
            if depth < len(members) and len(chosen) < n:
                chosen.append(members[depth])
        depth += 1
    return chosen


def _spread_rank(k: int, count: int) -> float:
    """Where index ``k`` of ``count`` comes in a low-discrepancy order (bit-reversed position)."""
    bits = max(1, (count - 1).bit_length())
    return int(format(k, f"0{bits}b")[::-1], 2)


# ----------------------------------------------------------------------------- one env
def cli_args(env_id: str, out_dir: Path, env_kwargs: dict | None = None) -> list[str]:
    """The command line that trains ``env_id`` for two iterations into ``out_dir``."""
    kwargs = [arg for key, value in (env_kwargs or {}).items() for arg in ("--env-kwarg", f"{key}={value}")]
    return [sys.executable, "-m", "jaxppo.run", "--env", env_id, *RUN_ARGS, *kwargs, "--out", str(out_dir)]


def child_env(fast_compile: bool = True, cache_dir: Path | None = None) -> dict:
    """The children's environment: this one, with fast-compile XLA flags added where asked, and
    jaxppo's compilation cache in ``cache_dir`` where given."""
    env = dict(os.environ)
    if fast_compile:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()
    if cache_dir is not None:
        env["JAXPPO_CACHE_DIR"] = str(cache_dir)
    return env


def checkpoint_written(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a complete checkpoint: a ``checkpoints/<iteration>.npz`` (a checkpoint
    being written has a temporary name until it is complete)."""
    from jaxppo.rundir import checkpoint_steps

    return bool(checkpoint_steps(Path(run_dir) / "checkpoints"))


def classify(returncode: int | None, stdout: str, stderr: str, run_dir: Path) -> tuple[str, str]:
    """``(status, message)`` of a finished command (``returncode`` None: it timed out)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if returncode == 0:
        if checkpoint_written(run_dir):
            summary = [line.strip() for line in stdout.splitlines() if line.strip().startswith("compile ")]
            return "trained", summary[-1] if summary else ""
        return "crashed", f"exit status 0 but no checkpoint in {run_dir}"
    if returncode == 2 and len(lines) == 1 and lines[0].startswith(ERROR_PREFIX) and "Traceback" not in stderr:
        return "refused", lines[0]
    output = [line for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
    cause = "timed out" if returncode is None else f"exit status {returncode}"
    return "crashed", "\n".join([cause, *output[-TAIL_LINES:]])


def run_env(
    env_id: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env_kwargs: dict | None = None,
    fast_compile: bool = True,
    workdir: Path | None = None,
) -> dict:
    """Train ``env_id`` from the command line and classify the outcome: a result row
    ``{suite, id, status, seconds, message}`` (with ``env_kwargs`` where some were passed)."""
    with tempfile.TemporaryDirectory(prefix="sweep-", dir=workdir) as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        # A session of its own, so a timeout kills the command and anything it started.
        # cwd: the temporary directory, where MuJoCo leaves its MUJOCO_LOG.TXT.
        process = subprocess.Popen(
            cli_args(env_id, run_dir, env_kwargs),
            cwd=tmp,
            # An empty compilation cache of its own: every env compiles cold, as on first use,
            # and nothing of the sweep's is left in the user's cache.
            env=child_env(fast_compile, Path(tmp) / "xla-cache"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
            returncode = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            returncode = None
        seconds = time.perf_counter() - start
        status, message = classify(returncode, stdout, stderr, run_dir)
    row = {"suite": env_id.split("/", 1)[0], "id": env_id, "status": status, "seconds": round(seconds, 1)}
    if env_kwargs:
        row["env_kwargs"] = dict(env_kwargs)
    row["message"] = message
    return row


def default_env_kwargs(env_id: str, brax_backend: str | None) -> dict:
    """The env kwargs the sweep tries first: ``--brax-backend`` for brax envs, where given."""
    return {"backend": brax_backend} if env_id.startswith("brax/") and brax_backend else {}


def run_sweep_env(env_id: str, *, brax_backend: str | None = None, **options) -> dict:
    """``run_env`` with ``default_env_kwargs``, and again without them where the env refuses
    them (brax's swimmer takes only its default backend)."""
    kwargs = default_env_kwargs(env_id, brax_backend)
    row = run_env(env_id, env_kwargs=kwargs, **options)
    if kwargs and row["status"] == "refused" and f"env_kwargs {sorted(kwargs)} rejected" in row["message"]:
        row = run_env(env_id, **options)
    return row


def sweep(env_ids, *, jobs: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S, fast_compile: bool = True,
          brax_backend: str | None = None, log=print) -> list[dict]:  # fmt: skip
    """``run_env`` for every id, ``jobs`` at a time; the rows in the order of ``env_ids``."""

    def one(env_id):
        return run_sweep_env(env_id, brax_backend=brax_backend, timeout_s=timeout_s, fast_compile=fast_compile)

    rows = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(one, env_id): env_id for env_id in env_ids}
        for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
            row = future.result()
            rows[row["id"]] = row
            if log:
                first = row["message"].splitlines()[0] if row["message"] else ""
                log(f"[{k}/{len(env_ids)}] {row['status']:8} {row['seconds']:6.1f} s  {row['id']}  {first[:110]}")
    return [rows[env_id] for env_id in env_ids]


# ----------------------------------------------------------------------------- reports
def reason(row: dict) -> str:
    """A refusal's message without the program's prefix, with the env's own name replaced by
    ``<env>`` and any list after it cut, so refusals for one reason group together."""
    text = row["message"].removeprefix(ERROR_PREFIX).strip()
    suite, name = row["id"].split("/", 1)
    text = text.replace(row["id"], "<env>").replace(repr(name), "<env>").replace(name, "<env>")
    text = re.sub(r"(supported|envs|ids|benchmark)(: | <)[^;]*$", r"\1: ...", text)  # drop long lists
    text = re.sub(r"--env-kwarg benchmark=<[^>]*>", "--env-kwarg benchmark=<name>", text)
    return text


def summarize(rows: list[dict], registered: dict | None = None) -> dict:
    """Per suite: envs registered (``registered[suite]``, else the rows) and run, counts by status,
    refusal reasons with their counts, and the crashed ids."""
    summary = {}
    for suite in dict.fromkeys(row["suite"] for row in rows):
        mine = [row for row in rows if row["suite"] == suite]
        counts = Counter(row["status"] for row in mine)
        reasons = Counter(reason(row) for row in mine if row["status"] == "refused")
        summary[suite] = {
            "registered": (registered or {}).get(suite, len(mine)),
            "run": len(mine),
            **{status: counts.get(status, 0) for status in STATUSES},
            "refusals": [{"reason": text, "count": n} for text, n in reasons.most_common()],
            "crashed_ids": [row["id"] for row in mine if row["status"] == "crashed"],
        }
    return summary


def table(rows: list[dict], registered: dict | None = None) -> str:
    """The per-suite table: registered, run, trained, refused (reasons grouped), crashed."""
    summary = summarize(rows, registered)
    columns = ("registered", "run", *STATUSES)
    lines = [f"{'suite':11}" + "".join(f"{c:>11}" for c in columns)]
    total = {c: sum(s[c] for s in summary.values()) for c in columns}
    for suite, s in [*summary.items(), ("all", total)]:
        lines.append(f"{suite:11}" + "".join(f"{s[c]:>11}" for c in columns))
    for suite, s in summary.items():
        for refusal in s["refusals"]:
            lines.append(f"  {suite} refused x{refusal['count']}: {refusal['reason'][:220]}")
        for env_id in s["crashed_ids"]:
            lines.append(f"  {suite} crashed: {env_id}")
    return "\n".join(lines)


def machine() -> dict:
    """The machine the sweep ran on: CPU model and cores, Python and jax versions."""
    import jax

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.system(), "python": platform.python_version(),
            "jax": jax.__version__}  # fmt: skip


def write_docs(payload: dict, path: Path = DEFAULT_DOCS) -> None:
    """``docs/suites.md``: per suite, how many registered envs train and how many are refused and why."""
    rows = payload["results"]
    summary = summarize(rows, payload.get("registered"))
    m = payload["machine"]
    out = [
        "# Env suites: which registered envs train",
        "",
        "Every env id that a suite's own registry lists, trained for two iterations from the command line "
        f"(`{PROG} --env SUITE/NAME {' '.join(RUN_ARGS)} --out DIR`, which also writes a checkpoint at the end) "
        "and classified as **trained** (exit status 0 and a complete checkpoint), **refused** (exit status 2 "
        "and a one-line `error:` naming the reason) or **crashed** (anything else).",
        "",
        f"Generated by `python experiments/sweep_suites.py` from `{payload['json']}`, on a {m['cores']}-core "
        f"{m['system']} CPU ({m['cpu']}), Python {m['python']}, jax {m['jax']}; children compiled with "
        f'`XLA_FLAGS="{payload["xla_flags"]}"`; per-env timeout {payload["timeout_s"]:.0f} s. The seconds are '
        "wall-clock, start-up and compilation included, two envs at a time on a machine shared with other "
        "work. Commands:",
        "",
        *[f"    {command}" for command in payload["commands"]],
        "",
    ]
    if payload.get("env_kwargs"):
        out += ["Env kwargs the sweep passes: " + "; ".join(f"{k}: `{v}`" for k, v in payload["env_kwargs"].items())
                + ".", ""]  # fmt: skip
    out += [
        "| suite | registered | trained | refused | crashed | registry |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for suite, s in summary.items():
        registry = payload["registries"].get(suite, "")
        out.append(f"| {suite} | {s['registered']} | {s['trained']} | {s['refused']} | {s['crashed']} | {registry} |")
    total = {k: sum(s[k] for s in summary.values()) for k in ("registered", *STATUSES)}
    out += [f"| **all** | {total['registered']} | {total['trained']} | {total['refused']} | {total['crashed']} | |", ""]
    for suite, s in summary.items():
        mine = [row for row in rows if row["suite"] == suite]
        trained = [row for row in mine if row["status"] == "trained"]
        out += [f"## {suite}", ""]
        if trained:
            seconds = sorted(row["seconds"] for row in trained)
            out.append(f"Trained ({len(trained)}, {seconds[0]:.0f}-{seconds[-1]:.0f} s each): " + ", ".join(f"`{row['id'].split('/', 1)[1]}`" for row in trained) + ".")  # fmt: skip
            out.append("")
        for refusal in s["refusals"]:
            refused = [row for row in mine if row["status"] == "refused" and reason(row) == refusal["reason"]]
            names = ", ".join(f"`{row['id'].split('/', 1)[1]}`" for row in refused)
            which = "the message" if len(refused) == 1 else "the first one's message"
            out += [f"Refused ({len(refused)}): {names}; {which}:", "", "```text",
                    refused[0]["message"], "```", ""]  # fmt: skip
        for row in mine:
            if row["status"] == "crashed":
                out += [f"Crashed: `{row['id']}`:", "", "```text", row["message"], "```", ""]
    Path(path).write_text("\n".join(out).rstrip() + "\n")


# ----------------------------------------------------------------------------- command line
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--suites", default=",".join(SUITES), help=f"comma-separated suites (default all: {','.join(SUITES)})"
    )
    p.add_argument("--envs", help="comma-separated env ids to run instead of the registries' (merged into --out)")
    p.add_argument("--rerun", choices=STATUSES, help="run again the envs --out holds with this status (merged)")
    p.add_argument("--sample", type=int, metavar="N", help="N envs per suite, spread across families")
    p.add_argument("--jobs", type=int, default=1, help="commands at a time (default 1)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per env (default %(default)s)")
    p.add_argument("--no-fast-compile", dest="fast_compile", action="store_false", help="XLA's default flags")
    p.add_argument("--brax-backend", help="a backend kwarg for brax envs (default: none, brax's own)")
    p.add_argument("--merge", action="store_true", help="update the rows of --out instead of replacing the file")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON (default %(default)s)")
    p.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="the Markdown summary (default %(default)s)")
    p.add_argument("--no-docs", dest="docs", action="store_const", const=None, help="write no Markdown")
    p.add_argument("--docs-only", action="store_true", help="only write --docs from --out, running nothing")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else None
    if args.docs_only:
        if previous is None:
            sys.exit(f"{args.out} does not exist; run the sweep first")
        print(table(previous["results"], previous.get("registered")))
        write_docs(previous, args.docs or DEFAULT_DOCS)
        return 0
    suites = [s for s in args.suites.split(",") if s]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        sys.exit(f"unknown suites {unknown}; suites: {', '.join(SUITES)}")
    merge = args.merge or bool(args.envs) or bool(args.rerun)
    registered = {}  # per suite: the ids its registry lists
    if merge and previous is None:
        sys.exit(f"{args.out} does not exist: --envs, --rerun and --merge update an earlier sweep")
    if args.rerun:
        env_ids = [row["id"] for row in previous["results"] if row["status"] == args.rerun and row["suite"] in suites]
    elif args.envs:
        env_ids = [e for e in args.envs.split(",") if e]
    else:
        env_ids = []
        for suite in suites:
            ids = registered_envs(suite)
            registered[suite] = len(ids)
            env_ids += sample(ids, args.sample) if args.sample else ids
    print(f"{len(env_ids)} envs, {args.jobs} at a time", flush=True)
    start = time.perf_counter()
    rows = sweep(env_ids, jobs=args.jobs, timeout_s=args.timeout, fast_compile=args.fast_compile,
                 brax_backend=args.brax_backend or None, log=lambda line: print(line, flush=True))  # fmt: skip
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = f"python experiments/sweep_suites.py {shlex.join(sys.argv[1:] if argv is None else argv)}".strip()
    command = f"{command}  # {stamp}: {len(env_ids)} envs in {time.perf_counter() - start:.0f} s"
    if merge:
        by_id = {row["id"]: row for row in rows}
        kept = [by_id.pop(row["id"], row) for row in previous["results"]]
        results, commands = kept + list(by_id.values()), [*previous["commands"], command]
        registered = {**previous.get("registered", {}), **registered}
    else:
        results, commands = rows, [command]
    payload = {
        "json": str(args.out.resolve().relative_to(ROOT)) if args.out.resolve().is_relative_to(ROOT) else str(args.out),
        "commands": commands,
        "cli": f"{PROG} --env SUITE/NAME {' '.join(RUN_ARGS)} --out DIR",
        "machine": machine(),
        "xla_flags": FAST_COMPILE_FLAGS if args.fast_compile else os.environ.get("XLA_FLAGS", ""),
        "env_kwargs": {"brax/*": f"backend={args.brax_backend}, or none where the env refuses it"}
        if args.brax_backend
        else {},
        "timeout_s": args.timeout,
        "registries": {suite: REGISTRIES[suite][1] for suite in SUITES},
        "registered": registered,
        "summary": summarize(results, registered),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(table(results, registered))
    print(f"wrote {args.out}")
    if args.docs:
        write_docs(payload, args.docs)
        print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
