"""Whether a run or cache directory can be trusted: no other user could have planted or swapped it.

A directory is trusted when it and every directory above it belong to this process's user or root
and no one else can write to them; a world-writable parent is allowed only with the sticky bit
and a trusted owner (/tmp, /var/tmp), because then only its owner and the entry's owner can rename
or remove the entry. A path that does not exist yet is judged by the directories above it (it
will be created by this user). The same rule as sshd's StrictModes, for the directories a launch
runs code from. Pure Python: the launcher's preflight module calls it on every node.
"""

from __future__ import annotations

import os
import stat

__all__ = ["directory_problem", "directory_problems"]


def _owner(uid: int) -> str:
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _judge(path: str, st: os.stat_result, uid: int, leaf: bool) -> str | None:
    what = "is in" if leaf else "lies under"
    if st.st_uid not in (uid, 0):
        trusted = "root" if uid == 0 else f"{_owner(uid)} or root"
        return f"{path} belongs to {_owner(st.st_uid)}, not {trusted}: another user could have planted it"
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and not (st.st_mode & stat.S_ISVTX and not leaf):
        who = "everyone" if st.st_mode & stat.S_IWOTH else "its group"
        return (f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): another user could "
                f"swap what {what} it")
    return None


def directory_problem(path: str, uid: int | None = None) -> str | None:
    """One line saying why `path` cannot be trusted by user `uid` (default: this process's), or None.

    `path` itself must be a directory (not a symbolic link) that only its owner may write, owned by
    `uid` or root; every directory above it as well, except that a sticky, root- or uid-owned one
    (/tmp) may be world-writable. A missing `path` is judged by the directories above it.
    """
    uid = os.geteuid() if uid is None else uid
    path = os.path.abspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return f"{path} cannot be checked: {exc.strerror}"
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            return f"{path} is a symbolic link (to {os.readlink(path)}): refusing to follow it"
        if not stat.S_ISDIR(st.st_mode):
            return f"{path} is not a directory"
        problem = _judge(path, st, uid, leaf=True)
        if problem:
            return problem
    parent = os.path.dirname(path)
    while True:
        try:
            pst = os.stat(parent)  # a parent may be a link (e.g. /var/run): its target is judged
        except FileNotFoundError:
            pst = None
        except OSError as exc:
            return f"{parent} cannot be checked: {exc.strerror}"
        if pst is not None:
            problem = _judge(parent, pst, uid, leaf=False)
            if problem:
                return problem
        if parent == os.path.dirname(parent):
            return None
        parent = os.path.dirname(parent)


def directory_problems(paths: list[str], uid: int | None = None) -> list[str]:
    """directory_problem of each path (empty ones and repeats left out), the problems only."""
    found = (directory_problem(path, uid) for path in dict.fromkeys(p for p in paths if p))
    return [problem for problem in found if problem]
