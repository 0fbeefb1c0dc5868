"""Test-case manifests: load, validate a run request, and resolve it into a launch plan.

Pure Python (no Ansible imports) so the rules are unit-tested directly; the `testcase_plan`
module is a thin wrapper. Every error is one line that names the offending value.
"""

from __future__ import annotations

import os
import re
import time
import uuid
import zlib
from typing import Any

try:
    import yaml
except ImportError:  # the module reports it (missing_required_lib); the pure functions do not need it
    yaml = None

from ansible_collections.awsome.distributed_training.plugins.module_utils.metrics_adapters import ADAPTERS
from ansible_collections.awsome.distributed_training.plugins.module_utils.run_checks import CHECKS

MAX_NODES = 64
RDZV_PORT_BASE, RDZV_PORTS = 29500, 2000
TYPES = {"int": int, "float": float, "str": str, "bool": bool}
LAUNCH_MODES = ("torchrun", "command")
# What the preflight imports to prove a node (or an image) holds the case's framework, unless the
# manifest names the module itself (environment.import).
FRAMEWORK_IMPORTS = {"pytorch": "torch", "jax": "jax", "composer": "composer", "megatron": "megatron.core",
                     "nemo": "nemo", "bionemo": "bionemo", "torchtitan": "torchtitan",
                     "neuronx-distributed": "neuronx_distributed"}
# container_image request values that are not image names.
CONTAINER_DEFAULT = "default"
CONTAINER_NONE = "none"
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ManifestError(ValueError):
    """A request or manifest the launcher refuses; str() is the one-line user message."""


def known_cases(cases_dir: str) -> list[str]:
    return sorted(d for d in os.listdir(cases_dir)
                  if os.path.isfile(os.path.join(cases_dir, d, "testcase.yml")))


def load_manifest(cases_dir: str, name: str) -> dict:
    if not name or not re.fullmatch(r"[a-z0-9_-]+", str(name)):
        raise ManifestError(f"invalid test case name {name!r}")
    path = os.path.join(cases_dir, name, "testcase.yml")
    if not os.path.isfile(path):
        raise ManifestError(f"unknown test case {name!r} (known: {', '.join(known_cases(cases_dir))})")
    if yaml is None:
        raise ManifestError("reading a test case manifest needs PyYAML on the controller")
    with open(path, encoding="utf-8") as fh:
        manifest = yaml.safe_load(fh)
    _check_manifest(manifest, path)
    versions = os.path.join(os.path.dirname(os.path.abspath(cases_dir)), "stack", "versions.yml")
    _pinned_image(manifest, path, versions)
    return manifest


def _pinned_image(manifest: dict, path: str, versions: str) -> None:
    """container.image_pin names the image in the versions manifest (its `stack_images`): the one place
    a framework's image and tag are pinned. Resolved here, so every later step sees container.image."""
    container = manifest.get("container") or {}
    pin = container.get("image_pin")
    if not pin:
        return
    try:
        with open(versions, encoding="utf-8") as fh:
            images = (yaml.safe_load(fh) or {}).get("stack_images") or {}
    except OSError:
        raise ManifestError(f"{path}: container.image_pin {pin!r} needs stack_images in {versions}") from None
    if pin not in images:
        raise ManifestError(f"{path}: container.image_pin {pin!r} is not in stack_images of {versions} "
                            f"(known: {', '.join(sorted(images))})")
    container["image"] = images[pin]["image"]


def _check_manifest(m: Any, path: str) -> None:
    if not isinstance(m, dict):
        raise ManifestError(f"{path}: not a mapping")
    if "entrypoint" not in m and not (m.get("launch") or {}).get("command"):
        raise ManifestError(f"{path}: missing key 'entrypoint' (or launch.command)")
    for key in ("name", "parameters", "presets", "metrics", "success"):
        if key not in m:
            raise ManifestError(f"{path}: missing key {key!r}")
    for pname, spec in m["parameters"].items():
        if spec.get("type") not in TYPES:
            raise ManifestError(f"{path}: parameter {pname!r} has unknown type {spec.get('type')!r}")
    unknown = set(m["success"].get("checks", [])) - set(CHECKS)
    if unknown:
        raise ManifestError(f"{path}: unknown success checks {sorted(unknown)}")
    adapter = (m["metrics"] or {}).get("adapter")
    if adapter is not None and adapter not in ADAPTERS:
        raise ManifestError(f"{path}: unknown metrics.adapter {adapter!r} "
                            f"(known: {', '.join(sorted(ADAPTERS))})")
    for preset, body in m["presets"].items():
        for pname in (body.get("parameters") or {}):
            if pname not in m["parameters"]:
                raise ManifestError(f"{path}: preset {preset!r} sets undeclared parameter {pname!r}")
    launch = m.get("launch") or {}
    if launch.get("mode", "torchrun") not in LAUNCH_MODES:
        raise ManifestError(f"{path}: launch.mode must be one of {list(LAUNCH_MODES)}, "
                            f"got {launch['mode']!r}")
    if launch.get("mode") == "command" and not launch.get("command"):
        raise ManifestError(f"{path}: launch.mode command needs launch.command (the argv run on each node)")
    if "command" in launch and not (isinstance(launch["command"], list) and launch["command"]
                                    and all(isinstance(a, str) for a in launch["command"])):
        raise ManifestError(f"{path}: launch.command must be a non-empty list of strings")
    if framework_module(m) is None:
        raise ManifestError(f"{path}: framework {m.get('framework')!r} is unknown: name the module to "
                            f"import in environment.import")
    render = m.get("render_only")
    if render is not None and not (isinstance(render, dict) and str(render.get("why", "")).strip()):
        raise ManifestError(f"{path}: render_only must be a mapping with 'why' (the reason a real launch "
                            f"is refused)")


def framework_module(manifest: dict) -> str | None:
    """The module whose import proves a node or image can run the case."""
    env = manifest.get("environment") or {}
    return env.get("import") or FRAMEWORK_IMPORTS.get(manifest.get("framework", "pytorch"))


def coerce(name: str, spec: dict, value: Any) -> Any:
    """Convert a user value to the declared type; strings from `-e key=value` are accepted."""
    kind = spec["type"]
    bad = ManifestError(f"parameter {name!r} must be {kind}, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            out = value.lower() in _TRUE
        else:
            raise bad
    elif kind in ("int", "float"):
        if isinstance(value, bool):
            raise bad
        try:
            out = TYPES[kind](value)
        except (TypeError, ValueError):
            raise bad from None
        if kind == "int" and isinstance(value, float) and value != int(value):
            raise bad
        if "min" in spec and out < spec["min"]:
            raise ManifestError(f"parameter {name!r} must be >= {spec['min']}, got {out}")
        if "max" in spec and out > spec["max"]:
            raise ManifestError(f"parameter {name!r} must be <= {spec['max']}, got {out}")
    else:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise bad
        out = str(value)
    if "choices" in spec and out not in spec["choices"]:
        raise ManifestError(f"parameter {name!r} must be one of {spec['choices']}, got {out!r}")
    return out


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in _TRUE


def _positive_int(what: str, value: Any, maximum: int) -> int:
    try:
        out = int(value)
        if isinstance(value, bool) or str(out) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ManifestError(f"{what} must be a whole number, got {value!r}") from None
    if not 1 <= out <= maximum:
        raise ManifestError(f"{what} must be between 1 and {maximum}, got {out}")
    return out


_CONSTRAINT = re.compile(r"^\s*(\w+)\s*(<=|<|>=|>|==|!=)\s*(\w+)\s*$")
_COMPARE = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
            ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def check_constraints(constraints: list[str], params: dict) -> None:
    """Relations between parameters (`warmup_steps <= steps`), checked before anything launches."""
    for text in constraints:
        match = _CONSTRAINT.match(text)
        if not match:
            raise ManifestError(f"constraint {text!r} is not of the form 'a <= b'")
        left, op, right = match.groups()

        def value(token: str) -> Any:
            return params[token] if token in params else float(token)

        if not _COMPARE[op](value(left), value(right)):
            shown = " ".join(f"{t} ({params[t]})" if t in params else t for t in (left, op, right))
            raise ManifestError(f"parameters must satisfy {text.strip()}: got {shown}")


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def to_cli(params: dict, specs: dict) -> list[str]:
    """`--name-with-dashes VALUE` per parameter; booleans as `--name` / `--no-name`."""
    args: list[str] = []
    for name in sorted(params):
        spec = specs[name]
        value = params[name]
        if "flag" in spec:  # a foreign CLI's own spelling: `--training.steps 20`, bools as `--x true|false`
            text = str(value).lower() if spec["type"] == "bool" else str(value)
            # A flag ending in `=` is one word with its value: Hydra's `trainer.max_steps=50`.
            args += [spec["flag"] + text] if spec["flag"].endswith("=") else [spec["flag"], text]
            continue
        flag = "--" + name.replace("_", "-")
        if spec["type"] == "bool":
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args


def check_cli(manifest: dict, argv: list[str]) -> None:
    """The framework's own arguments in `argv` against the CLI the manifest declares (render_only.cli).

    `program`: the words that start the framework's command line (what comes before them is the
    process launcher's); `flags`: options without a value; `options`: options taking one value
    (`--x V` or `--x=V`); `keys`: `key=value` overrides (Hydra, NeMo-Run). Everything after the
    program must be one of these: the same refusal the framework's parser would give, before a
    launch rather than on the nodes.
    """
    cli = (manifest.get("render_only") or {}).get("cli") or {}
    program = [str(w) for w in cli.get("program") or []]
    if not program:
        return
    for start in range(len(argv) - len(program) + 1):
        if argv[start:start + len(program)] == program:
            break
    else:
        raise ManifestError(f"{manifest['name']}: the command does not run {' '.join(program)}")
    flags, options, keys = (set(cli.get(k) or []) for k in ("flags", "options", "keys"))
    words = argv[start + len(program):]
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, _value = word.partition("=")
        if word.startswith("-"):
            if name in options:
                i += 1 if eq else 2
                continue
            if name in flags and not eq:
                i += 1
                continue
        elif eq and name in keys:
            i += 1
            continue
        raise ManifestError(f"{manifest['name']}: {' '.join(program)} does not accept {word!r} "
                            f"(render_only.cli of its testcase.yml lists what it accepts)")
    if i > len(words):
        raise ManifestError(f"{manifest['name']}: option {words[-1]!r} needs a value")


def _launch_mode(manifest: dict, requested: Any) -> str:
    launch = manifest.get("launch") or {}
    mode = requested or launch.get("mode", "torchrun")
    if mode not in LAUNCH_MODES:
        raise ManifestError(f"launch_mode must be one of {', '.join(LAUNCH_MODES)}, got {mode!r}")
    if mode == "command" and not launch.get("command"):
        raise ManifestError(f"{manifest['name']} has no launch.command: launch_mode command is not available "
                            f"(use torchrun)")
    if mode == "torchrun" and not manifest.get("entrypoint"):
        raise ManifestError(f"{manifest['name']} has no entrypoint for torchrun (launch_mode command only)")
    return mode


def _container(manifest: dict, requested: Any, accelerator: str) -> dict | None:
    """The image and its mounts/env, or None for a bare launch.

    `requested`: empty = the manifest decides (an image only when it requires one), `default` = the
    manifest's image for this accelerator, `none` = bare, anything else = that image.
    """
    spec = manifest.get("container") or {}
    required = bool(spec.get("required", False))
    images = spec.get("image") or {}
    requested = str(requested or "").strip()
    if requested == CONTAINER_NONE:
        if required:
            raise ManifestError(f"{manifest['name']} runs only in a container (container.required); "
                                f"container_image=none is not possible")
        return None
    if not requested and not required:
        return None
    if requested in ("", CONTAINER_DEFAULT):
        image = images.get(accelerator) if isinstance(images, dict) else images
        if not image:
            raise ManifestError(f"{manifest['name']} names no container image for accelerator "
                                f"{accelerator!r} (pass -e container_image=<image>)")
    else:
        image = requested
    # `registry#image:tag` is Enroot's (and Pyxis') spelling of an image in a registry.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@+#-]*|/[A-Za-z0-9._/+-]+", image):
        raise ManifestError(f"container image {image!r} is not an image name or an absolute path")
    mounts = []
    for m in spec.get("mounts") or []:
        src, _sep, dst = str(m).partition(":")
        if not src.startswith("/") or (dst and not dst.startswith("/")):
            raise ManifestError(f"container mount {m!r} must be /source[:/destination]")
        mounts.append({"src": src, "dst": dst or src})
    return {"image": image, "mounts": mounts,
            "env": {k: str(v) for k, v in (spec.get("env") or {}).items()},
            "workdir": spec.get("workdir") or ""}


def resolve(manifest: dict, *, preset: str | None, params: Any = None, nodes: Any = None,
            procs_per_node: Any = None, hosts: list[str], target: str, run_id: str | None = None,
            timeout_s: Any = None, launch_mode: Any = None, container_image: Any = None,
            render_only: Any = False) -> dict:
    """Turn a request into the plan every later launcher step reads."""
    name = manifest["name"]
    render = manifest.get("render_only")
    if render and not _flag(render_only):
        raise ManifestError(f"{name} is render-only here: {str(render['why']).strip()} (-e render_only=true "
                            f"writes every node's launch under results/<run-id>/rendered/)")
    presets = manifest["presets"]
    if not preset:
        raise ManifestError(f"no preset given for {name} (presets: {', '.join(presets)})")
    if preset not in presets:
        raise ManifestError(f"unknown preset {preset!r} for {name} (presets: {', '.join(presets)})")
    body = presets[preset]
    resources = body.get("resources", {})

    params = params or {}
    if isinstance(params, str):
        raise ManifestError(f"params must be a mapping, got {params!r} (use -e '{{\"params\": {{...}}}}')")
    specs = manifest["parameters"]
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise ManifestError(f"unknown parameter(s) {', '.join(unknown)} for {name} "
                            f"(known: {', '.join(specs)})")
    merged = {k: s["default"] for k, s in specs.items() if "default" in s}
    merged.update(body.get("parameters") or {})
    merged.update(params)
    resolved = {k: coerce(k, specs[k], v) for k, v in merged.items()}
    check_constraints(manifest.get("constraints", []), resolved)

    requested = resources.get("nodes", 1) if nodes in (None, "") else nodes
    want = _positive_int("nodes", requested, MAX_NODES)
    requested = resources.get("procs_per_node", 1) if procs_per_node in (None, "") else procs_per_node
    ppn = _positive_int("procs_per_node", requested, 64)
    if not hosts:
        raise ManifestError(f"no nodes: inventory group {target!r} is empty or missing (pass -i <inventory>)")
    if want > len(hosts):
        raise ManifestError(f"{name}/{preset} needs {want} node(s) but inventory group {target!r} "
                            f"has {len(hosts)}: {', '.join(hosts)}")
    # Name order (node2 before node10), so dynamic inventories pick the same head every time.
    chosen = sorted(hosts, key=_natural)[:want]

    accelerator = resources.get("accelerator", "cpu")
    env_spec = manifest.get("env") or {}
    env = {**(env_spec.get("common") or {}), **(env_spec.get(accelerator) or {})}
    launch = manifest.get("launch") or {}
    mode = _launch_mode(manifest, launch_mode)
    container = _container(manifest, container_image, accelerator)
    success = manifest["success"]
    args = [*launch.get("args", []), *to_cli(resolved, specs)]
    if mode == "command":
        check_cli(manifest, [*launch.get("command", []), *args])
    run_id = run_id or f"{name}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    return {
        "run_id": run_id,
        "test_case": name,
        "preset": preset,
        "params": resolved,
        # The declarations themselves: staged beside the code, where the entry point's parser reads them.
        "parameters": specs,
        "args": args,
        "code": manifest.get("code", []),
        "entrypoint": manifest.get("entrypoint", ""),
        "launch_mode": mode,
        # command mode: run once per node; `python` stands for the case's interpreter.
        "command": list(launch.get("command") or []),
        "container": container,
        "framework": manifest.get("framework", "pytorch"),
        "framework_module": framework_module(manifest),
        "venv": (manifest.get("environment") or {}).get("venv", ""),
        "checkpoint_dir": bool(launch.get("checkpoint_dir", False)),
        # False: the command takes its directories in its own arguments (${AWSOME_OUTPUT_DIR}), and
        # neither `--output-dir` nor `--checkpoint-dir` is appended (a foreign parser would refuse them).
        "output_dir_arg": bool(launch.get("output_dir_arg", True)),
        "render_only": str((render or {}).get("why", "")).strip(),
        "nodes": chosen,
        "head": chosen[0],
        # One port per run: two runs on the same nodes rendezvous apart (their directories are
        # per run id already).
        "rdzv_port": RDZV_PORT_BASE + zlib.crc32(run_id.encode()) % RDZV_PORTS,
        "procs_per_node": ppn,
        "world_size": want * ppn,
        "accelerator": accelerator,
        "env": {k: str(v) for k, v in env.items()},
        "timeout_s": _positive_int("timeout_s", timeout_s, 7 * 86400) if timeout_s not in (None, "")
        else int(success.get("timeout_s", 900)),
        "checks": list(success.get("checks", [])),
        "metrics": manifest["metrics"],
    }
