"""Filters the launcher's templates use to write a node's launch: `shell_words`, `rank_argv`,
`container_argv`, `pyxis_args`, `container_name` (logic in module_utils/job_launch.py)."""

from __future__ import annotations

from ansible_collections.awsome.distributed_training.plugins.module_utils import job_launch


def shell_words(argv):
    return job_launch.shell_words(list(argv))


def rank_argv(plan, python, profiler=None):
    return job_launch.rank_argv(dict(plan), str(python), dict(profiler) if profiler else None)


def container_argv(container, runtime, name, run_id, workdir, paths):
    """[options before the job's --env flags, the rest]: see job_launch.container_argv."""
    return list(job_launch.container_argv(str(runtime), dict(container), name=name, run_id=run_id,
                                          workdir=workdir, paths=list(paths)))


def pyxis_args(container, paths):
    return job_launch.pyxis_args(dict(container), paths=list(paths))


def container_name(run_id, host):
    return job_launch.container_name(str(run_id), str(host))


class FilterModule:
    def filters(self):
        return {"shell_words": shell_words, "rank_argv": rank_argv, "container_argv": container_argv,
                "pyxis_args": pyxis_args, "container_name": container_name}
