"""Summary of a py-spy ``--format raw`` profile (collapsed stacks): the hottest functions by self
time and by total time, and self time per package, as markdown tables.

    python -m bench.profile_summary PROFILE.txt [--top 15]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profile:
    samples: int
    self_time: Counter[str]  # "file:function" -> samples where it is the innermost frame
    total_time: Counter[str]  # "file:function" -> samples where it is anywhere on the stack
    by_package: Counter[str]  # package (gateway, providers, aiohttp, ...) -> self samples


def frame_key(frame: str) -> str:
    """``file:function`` without the line number.

    E.g. ``gateway/endpoints/chat.py:ChatEndpoint._stream``.
    """
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip() or "<unknown>"
    return f"{match['file']}:{match['func']}"


def package_of(key: str) -> str:
    path = key.split(":", 1)[0]
    if path.startswith("<"):
        return "python-internal"
    parts = [p for p in path.split("/") if p]
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    if len(parts) <= 1:
        return "stdlib" if path.endswith(".py") else (parts[0] if parts else "<unknown>")
    return parts[0]


def load(path: Path) -> Profile:
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        keys = [frame_key(frame) for frame in stack.split(";") if frame]
        # py-spy puts the thread name first ("process 123:..." / "thread (0x...)"): skip those.
        keys = [k for k in keys if not k.startswith(("process ", "thread "))] or ["<idle>"]
        self_time[keys[-1]] += count
        by_package[package_of(keys[-1])] += count
        for key in set(keys):
            total_time[key] += count
    return Profile(samples, self_time, total_time, by_package)


def _table(title: str, rows: list[tuple[str, int]], samples: int) -> list[str]:
    lines = [f"| {title} | samples | share |", "| --- | ---: | ---: |"]
    for key, count in rows:
        share = 100.0 * count / samples if samples else 0.0
        lines.append(f"| `{key}` | {count} | {share:.1f} % |")
    return lines


def render(profile: Profile, top: int = 15) -> str:
    out = [f"{profile.samples} samples of the gateway's busy thread(s) (idle time excluded).", ""]
    out += ["**By self time** (the innermost Python frame; time in C code such as socket calls,"]
    out += ["uvloop or orjson counts to the Python function that called it)", ""]
    out += _table("file:function", profile.self_time.most_common(top), profile.samples)
    ours = Counter(
        {k: v for k, v in profile.total_time.items() if package_of(k) in ("gateway", "providers")}
    )
    out += ["", "**By total time, gateway/ and providers/ only** (the function and its callees)"]
    out += [""]
    out += _table("file:function", ours.most_common(top + 10), profile.samples)
    out += ["", "**Self time by package**", ""]
    out += _table("package", profile.by_package.most_common(), profile.samples)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(render(load(args.profile), args.top), end="")


if __name__ == "__main__":
    main()
