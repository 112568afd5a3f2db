#!/usr/bin/env bash
# Compiles every ```cpp block of the user documentation (docs/*.md, README.md, examples/*/README.md)
# against the source tree's public headers, so that a tutorial cannot drift from the API it teaches.
# Usage: test_doc_snippets.sh SOURCE_DIR CXX_COMPILER
set -euo pipefail
src=$1 cxx=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/kq-doc-snippets.XXXXXX")
trap 'rm -rf "$work"' EXIT
includes=()
for d in common acceptor worker protocols server; do includes+=(-I "$src/$d/include"); done
count=0 failed=0
for doc in "$src"/docs/*.md "$src"/README.md "$src"/examples/*/README.md; do
  [ -e "$doc" ] || continue
  # One file per block: the lines between ```cpp and the next ```.
  awk -v out="$work/$(basename "$doc" .md)" '
    /^```cpp[[:space:]]*$/ { n++; f = out "." n ".cpp"; inblock = 1; next }
    /^```/ && inblock      { inblock = 0; close(f); next }
    inblock                { print > f }' "$doc"
done
for f in "$work"/*.cpp; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  if ! "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra "${includes[@]}" "$f" 2> "$f.log"; then
    echo "FAIL: $(basename "$f") (document.block-number.cpp) does not compile:" >&2
    cat "$f.log" >&2
    failed=$((failed + 1))
  fi
done
echo "compiled $count code blocks, $failed failed"
[ "$count" -gt 0 ] || { echo "FAIL: no code blocks found" >&2; exit 1; }
[ "$failed" -eq 0 ]
