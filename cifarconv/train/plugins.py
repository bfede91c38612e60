"""``--plugin``: the files or modules that register conv backends for a run.

A run's ``config.json`` lists them, each with the backends it registered; ``--resume`` and
``--eval`` import them again, and stop with one line when one is gone or no longer registers
a backend the run used.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import BACKENDS, PluginError, load_plugin

__all__ = ["PluginError", "load_plugins", "plugins_of_run", "run_config"]


def load_plugins(specs: list[str], run_dir: str | None) -> list[dict]:
    """Import the command line's plugins, then (for ``--resume`` / ``--eval``) the plugins of the
    run in ``run_dir`` whose backends are not registered yet.  Returns the records config.json keeps:
    ``{"plugin": spec, "path": file or None, "backends": [...]}``."""
    records = [_load(spec) for spec in specs]
    if run_dir is not None:
        used = set(run_config(Path(run_dir)).get("conv", []))
        for saved in plugins_of_run(Path(run_dir)):
            needed = used & set(saved.get("backends", []))
            if needed and needed <= set(BACKENDS):  # a --plugin (a new place of it) registers them already
                continue
            records.append(_reload(saved, needed, run_dir))
    return records


def run_config(run_dir: Path) -> dict:
    """A run's config.json (in the folder or, for a ``<conv>-seed<s>`` folder, its parent); {} if none."""
    for folder in (run_dir, run_dir.parent):
        try:
            saved = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict):
            return {**saved, "folder": str(folder)}
    return {}


def plugins_of_run(run_dir: Path) -> list[dict]:
    """The plugins a run's config.json records."""
    config = run_config(run_dir)
    plugins = config.get("plugins", [])
    if isinstance(plugins, list) and all(isinstance(p, dict) and isinstance(p.get("plugin"), str) for p in plugins):
        return plugins
    raise PluginError(f"{config['folder']}/config.json: its plugins entry is not a list of plugins; "
                      f"remove the entry if the run used none")


def _load(spec: str) -> dict:
    registered = load_plugin(spec)
    path = Path(spec)
    is_file = spec.endswith(".py") or path.exists()
    return {"plugin": spec, "path": str(path.resolve()) if is_file else None, "backends": registered}


def _reload(saved: dict, needed: set[str], run_dir: str) -> dict:
    """Import a plugin a run recorded, from where it was (the file's full path) or as named."""
    where = saved.get("path") or saved["plugin"]
    try:
        registered = load_plugin(where)
    except PluginError as e:
        raise PluginError(f"the run in {run_dir} used plugin {saved['plugin']!r}, which cannot be imported now ({e}); "
                          f"restore it, or give its new place with --plugin") from None
    lost = sorted(name for name in needed if name not in BACKENDS)
    if lost:
        raise PluginError(f"the run in {run_dir} used backend {', '.join(map(repr, lost))} from plugin "
                          f"{saved['plugin']!r}, which no longer registers it (it registers: "
                          f"{', '.join(registered) or 'nothing'}); restore the plugin as it was")
    return {**saved, "backends": registered}
