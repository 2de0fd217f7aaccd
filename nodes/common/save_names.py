"""Names a node saves under (a file name, a prefix, a folder), checked the same way on every OS.

A name is a relative path that stays inside the folder it is given for (a models folder, ComfyUI's output
directory). ComfyUI runs on Windows as well as Linux, so ``\\`` separates folders exactly as ``/`` does (on Windows
``..\\..\\x`` climbs out of the folder), and a name is refused whenever some OS would read it as anything but a path
inside the folder: an absolute path, a drive (``C:``, ``C:\\x``, ``C:x``), a UNC share (``\\\\server\\share``), a
``.`` or ``..`` part, an empty part, or a part that Windows renames or refuses (a device name such as CON, NUL, COM1
or LPT1, with or without an extension; a trailing dot or space; one of ``<>:"|?*`` or a control character).
Subfolders are allowed, as in ComfyUI's own ``filename_prefix`` ("sub/name"); they are created inside the folder.
"""

import re
from pathlib import Path

SEPARATOR = re.compile(r"[\\/]")
DRIVE = re.compile(r"^[A-Za-z]:")
FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f]')
DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
)
NAMES = "a relative name such as 'name' or 'sub/name' inside {inside} (/ or \\ separate folders; "
FILE_NAMES = "a plain file name such as 'name' (no folders) in {inside} ("
RULES = (
    "no '..' or '.', absolute path, drive letter or UNC share; no part ending in a dot or space, holding one of "
    '<>:"|?*, or named like a Windows device: CON, PRN, AUX, NUL, COM0-9, LPT0-9)'
)


def name_parts(value: str, input_name: str, inside: str, subfolders: bool = True) -> tuple[str, ...]:
    """The folder and file parts of ``value`` (stripped, split at ``/`` and ``\\``); a ValueError naming
    ``input_name``, the problem and what is allowed when the name would leave ``inside`` on some OS (or, without
    ``subfolders``, names a folder at all)."""

    def refuse(problem: str) -> ValueError:
        allowed = (NAMES if subfolders else FILE_NAMES).format(inside=inside) + RULES
        return ValueError(f"{input_name} {value!r}: {problem}. Give {allowed}")

    name = value.strip()
    if not name:
        raise refuse("is empty")
    if SEPARATOR.match(name):
        raise refuse("is a UNC share" if SEPARATOR.match(name[1:]) else "is an absolute path")
    if DRIVE.match(name):
        raise refuse(f"names drive {name[:2]}")
    parts = tuple(SEPARATOR.split(name))
    for part in parts:
        if not part:
            raise refuse("has an empty part (two separators in a row, or one at the end)")
        if part in (".", ".."):
            raise refuse(f"has a {part!r} part")
        if forbidden := FORBIDDEN.search(part):
            raise refuse(f"{part!r} holds {forbidden.group()!r}")
        if part[-1] in ". ":
            raise refuse(f"{part!r} ends in a {'dot' if part[-1] == '.' else 'space'}, which Windows drops")
        if part.split(".")[0].rstrip(" ").upper() in DEVICES:
            raise refuse(f"{part!r} is a Windows device name")
    if len(parts) > 1 and not subfolders:
        raise refuse("names a folder")
    return parts


def path_inside(root: Path, value: str, input_name: str, inside: str) -> Path:
    """``root`` joined with the checked ``value`` (see ``name_parts``)."""
    return root.joinpath(*name_parts(value, input_name, inside))
