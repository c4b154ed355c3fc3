#!/usr/bin/env bash
# The document tools the tests read files back with, installed from Debian's packages when
# missing: LibreOffice Calc (headless, to render workbooks as people see them), poppler
# (pdftoppm, pdftotext, pdfinfo) and qpdf (to check PDF structure). Needs root or sudo on a
# Debian-like machine; elsewhere it says what to install. `scripts/setup-tools.sh pdf` installs
# only poppler (what the demo shows a report with).
set -euo pipefail
missing=()
[[ ${1:-} == pdf ]] || command -v soffice >/dev/null || missing+=(libreoffice-calc-nogui)
command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null || missing+=(poppler-utils)
[[ ${1:-} == pdf ]] || command -v qpdf >/dev/null || missing+=(qpdf)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
echo "setup-tools: installing ${missing[*]}"
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
if ! command -v apt-get >/dev/null; then
  echo "setup-tools: no apt-get here; install ${missing[*]} (LibreOffice Calc, poppler-utils, qpdf) by hand" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
echo "setup-tools: installed ${missing[*]}"
