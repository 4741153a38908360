#!/usr/bin/env python3
"""Exit 0 when every `name==version` of the requirements file given is installed at that version."""
import importlib.metadata
import sys

missing = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if "==" not in line:
        continue
    name, version = (s.strip() for s in line.split("==", 1))
    try:
        have = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        have = None
    if have != version:
        missing.append(f"{name}=={version} (installed: {have or 'none'})")
if missing:
    print("installing with pip: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
