#!/bin/sh
# Run by the Dockerfile (in Debian, POSIX sh): copies the shared libraries
# BINARY links, as ldd lists them (the dynamic loader included), into ROOT at
# the paths the loader looks them up by, so the binary runs on an empty base.
#
#   image-libs.sh BINARY ROOT
#
# Why ldd rather than a fixed list: what the binary links follows its
# dependencies' features, and a list written by hand goes stale unnoticed
# until the image fails to start. A library ldd cannot find fails the build.
set -eu
binary=$1
root=$2
libs=$(ldd "$binary")
if printf '%s\n' "$libs" | grep -q 'not found'; then
  printf 'image-libs: %s links libraries this stage lacks:\n%s\n' "$binary" "$libs" >&2
  exit 1
fi
# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the loader's
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso is the kernel's own.
printf '%s\n' "$libs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    # -L: the file itself, not the symlink the name often is.
    cp --parents -L "$lib" "$root"
    echo "image-libs: $lib"
  done
