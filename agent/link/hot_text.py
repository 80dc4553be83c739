#!/usr/bin/env python3
"""Regenerates agent/link/hot_text.ld: the functions the agent runs.

Runs `countywatch-bench agent_footprint` (the agent with its benchmark
configuration, then with its default sources) twice against a release
build:

1. with the agent under valgrind's callgrind, which names every function
   that runs (except the CPU-specific paths valgrind's CPU lacks: SHA
   extensions, AVX-512);
2. with `perf record -e page-faults` on the whole machine, which names the
   functions whose code faulted outside the hot section of the binary as
   built, whatever callgrind missed (those CPU paths, timing-dependent
   ones).

Names found are added to the ones already in the file (`--fresh` starts
over), so running it after each rebuild converges. Needs Debian's valgrind
and linux-perf, root (perf on the whole machine), and the release binaries:

    cargo build --release --bins && python3 agent/link/hot_text.py

The package's build (zig cc, so clang for the C code) runs C functions the
native build inlines; the header of hot_text.ld says how to run this
script on it too.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "hot_text.ld")
SECTION = ".text.hot_countywatch"

# Assembly files have one .text section for all their functions, so they
# are named by file: ring's code for the TLS the agent speaks (P-256, SHA-2,
# AES) and the C start-up file.
FILES = [
    "*Scrt1.o",
    "*p256-x86_64-asm-elf.o",
    "*sha256-x86_64-elf.o",
    "*sha512-x86_64-elf.o",
    "*aesni-x86_64-elf.o",
]

HASH = re.compile(r"^(_ZN.*17h)[0-9a-f]{16}E$")
# Fat LTO renames the local copies of a function NAME.643, NAME.3186 (or
# NAME.llvm.123...), numbered in the order modules were merged: another
# build (the package's, or the next commit's) numbers them differently.
LTO_SUFFIX = re.compile(r"^(.+?)\.(?:llvm\.)?[0-9]+$")
# GCC names clones of a C function NAME.constprop.0, NAME.isra.0, NAME.part.0;
# clang (zig cc, which builds the packages) keeps NAME.
C_CLONE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(constprop|isra|part|cold)\b.*$")


def patterns(symbol):
    """A symbol's section-name patterns: the legacy mangling's hash
    wildcarded, and a C function's name with and without GCC's clone
    suffixes, so the list holds for both compilers."""
    # Callgrind marks recursion depth as NAME'2.
    symbol = re.sub(r"'[0-9]+$", "", symbol)
    local = LTO_SUFFIX.match(symbol)
    if local and local.group(1).startswith(("_ZN", "_R")):
        return [each + suffix for each in patterns(local.group(1)) for suffix in ("", ".*")]
    match = HASH.match(symbol)
    if match:
        return [match.group(1) + "*E"]
    if symbol.startswith("_R"):
        return [symbol]
    clone = C_CLONE.match(symbol)
    name = clone.group(1) if clone else symbol
    return [name, name + ".*"]


def bench(directory, collections):
    env = dict(os.environ, COUNTYWATCH_BENCH_COLLECTIONS=str(collections))
    subprocess.run(
        [os.path.join(directory, "countywatch-bench"), "agent_footprint"],
        cwd=directory,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def stage(bin_dir, work, agent_name):
    """Copies the bench and collector into `work`, the agent as `agent_name`."""
    for name in ("countywatch-bench", "countywatch-collector"):
        shutil.copy2(os.path.join(bin_dir, name), work)
    shutil.copy2(os.path.join(bin_dir, "countywatch-agent"), os.path.join(work, agent_name))


def callgrind_names(bin_dir, collections):
    with tempfile.TemporaryDirectory() as work:
        stage(bin_dir, work, "countywatch-agent.real")
        out = os.path.join(work, "callgrind")
        os.mkdir(out)
        wrapper = os.path.join(work, "countywatch-agent")
        with open(wrapper, "w") as file:
            file.write(
                "#!/bin/sh\nexec valgrind --tool=callgrind --demangle=no --dump-instr=no "
                f"--compress-strings=no --compress-pos=no --callgrind-out-file={out}/agent.%p.out "
                f'{work}/countywatch-agent.real "$@"\n'
            )
        os.chmod(wrapper, 0o755)
        # The benchmark ends its agents with SIGKILL, which loses callgrind's
        # last dump; dumping every two seconds loses at most that much.
        dumper = subprocess.Popen(
            ["sh", "-c", "while true; do callgrind_control -d >/dev/null 2>&1; sleep 2; done"]
        )
        try:
            bench(work, collections)
        finally:
            dumper.kill()
        names = set()
        for path in glob.glob(os.path.join(out, "agent.*")):
            current_object = None
            with open(path, errors="replace") as file:
                for line in file:
                    if line.startswith("ob="):
                        current_object = line[3:].strip()
                    # Valgrind names the object of code outside `.text`
                    # "???", which is where the agent's hot code already is
                    # once this script has been applied.
                    elif line.startswith("fn=") and current_object in (
                        os.path.join(work, "countywatch-agent.real"),
                        "???",
                    ):
                        name = line[3:].strip()
                        if not name.startswith(("(", "0x")):
                            names.add(name)
        return names


def section_range(binary):
    headers = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True)
    for line in headers.stdout.splitlines():
        fields = line.split()
        if SECTION in fields:
            at = fields.index(SECTION)
            start = int(fields[at + 2], 16)
            return start, start + int(fields[at + 4], 16)
    return 0, 0


def page_fault_names(bin_dir, collections):
    with tempfile.TemporaryDirectory() as work:
        stage(bin_dir, work, "countywatch-agent")
        binary = os.path.join(work, "countywatch-agent")
        data = os.path.join(work, "faults.data")
        seconds = 2 * collections + 40
        recorder = subprocess.Popen(
            ["perf", "record", "-e", "page-faults", "-c", "1", "-a", "-d", "-o", data, "--", "sleep", str(seconds)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        bench(work, collections)
        recorder.wait()
        script = subprocess.run(
            ["perf", "script", "--no-demangle", "-i", data, "-F", "comm,pid,addr,ip,sym,dso"],
            capture_output=True,
            text=True,
        ).stdout
        symbols = {}
        table = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True)
        for line in table.stdout.splitlines():
            fields = line.split()
            if len(fields) == 3:
                symbols[fields[2]] = int(fields[0], 16)
        start, end = section_range(binary)
        line_format = re.compile(
            r"\s*\S+\s+\d+\s+[0-9a-f]+\s+(\S+)\s+\((\S+)\)\s+[0-9a-f]+\s+(\S+)\s+\((\S+)\)"
        )
        names = set()
        for line in script.splitlines():
            match = line_format.match(line)
            if not match:
                continue
            address_symbol, address_object, code_symbol, code_object = match.groups()
            # An instruction fetch: the faulting address is in the function
            # being run. Data faults (constants) are left out.
            if address_symbol != code_symbol or not code_object.endswith(binary):
                continue
            if address_object != code_object or code_symbol not in symbols:
                continue
            if not start <= symbols[code_symbol] < end:
                names.add(code_symbol)
        return names


def existing_patterns():
    if not os.path.exists(SCRIPT):
        return [], ""
    text = open(SCRIPT).read()
    header = text[: text.index("SECTIONS")]
    found = re.findall(r"^\s+\*\(\.text\.(\S+) \.text\.unlikely\.", text, re.MULTILINE)
    return found, header


def write(ordered, header):
    with open(SCRIPT, "w") as file:
        file.write(header)
        file.write("SECTIONS\n{\n  %s :\n  {\n" % SECTION)
        for name in FILES:
            file.write(f"    {name}(.text)\n")
        for name in ordered:
            file.write(f"    *(.text.{name} .text.unlikely.{name})\n")
        file.write("  }\n}\nINSERT BEFORE .text;\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default="target/release", help="where the release binaries are")
    parser.add_argument("--collections", type=int, default=20, help="collections per benchmark side")
    parser.add_argument("--fresh", action="store_true", help="forget the names already in the file")
    args = parser.parse_args()
    kept, header = existing_patterns()
    if args.fresh:
        kept = []
    traced = callgrind_names(args.bin_dir, args.collections)
    faulted = page_fault_names(args.bin_dir, args.collections)
    ordered = list(dict.fromkeys(kept))
    found = {each for name in traced | faulted for each in patterns(name)}
    new = sorted(found - set(ordered))
    ordered += new
    write(ordered, header)
    print(
        f"callgrind: {len(traced)} functions; page faults outside {SECTION}: {len(faulted)}; "
        f"patterns: {len(kept)} kept, {len(new)} new, {len(ordered)} in {SCRIPT}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
