#!/usr/bin/env python3
"""Exact resident memory of a program that stops itself at its end
(benches/real/c/small_footprint.c built with -DSTOP_AT_END), by mapping,
for several libraries run in turn (interleaved), N rounds:

    cc -O2 -fno-builtin -pthread -DSTOP_AT_END benches/real/c/small_footprint.c -o /tmp/sf_stop -lm
    EXE=/tmp/sf_stop benches/real/exact_rss.py 30 glibc= before=/tmp/before.so after=/tmp/after.so

A label with an empty path runs without LD_PRELOAD. For each run: the
program's Rss from smaps_rollup (total) and, from smaps, KiB by mapping:
heap (glibc's brk heap or strata's arena), other anonymous memory, the
preloaded library's file pages (and by permission), libc's, ld.so's.
Prints the medians and each library's sorted totals. (Hard-link the
libraries, `ln -f target/release/libstrata_malloc.so /tmp/after.so`: a
copy made with cp can come back from the page cache in larger folios,
which the kernel maps whole.)"""
import os
import re
import statistics
import subprocess
import sys
import time

n = int(sys.argv[1])
libs = [a.split('=', 1) for a in sys.argv[2:]]
exe = os.environ.get('EXE', '/tmp/sf_stop')
res = {label: [] for label, _ in libs}


def kind(name, so):
    if name in ('[heap]', '[arena]'):
        return 'heap'
    if so and os.path.basename(so) in name:
        return 'lib'
    if 'libc.so' in name:
        return 'libc'
    if 'ld-linux' in name:
        return 'ld'
    if name.startswith('/'):
        return 'exe'
    if name.startswith(('[stack', '[vdso', '[vvar')):
        return 'sys'
    return 'anon'


for _ in range(n):
    for label, so in libs:
        env = dict(os.environ)
        if so:
            env['LD_PRELOAD'] = so
        p = subprocess.Popen([exe], env=env, stdout=subprocess.DEVNULL)
        while not re.search(r'^State:\s+T', open(f'/proc/{p.pid}/status').read(), re.M):
            time.sleep(0.002)
        d = {}
        c = None
        for line in open(f'/proc/{p.pid}/smaps'):
            f = line.split()
            if re.match(r'^[0-9a-f]+-[0-9a-f]+$', f[0]):
                name = f[5] if len(f) > 5 else '[anon]'
                # strata's arena, where it was in the runs of docs/performance.md
                if f[0].startswith('7e0020000000'):
                    name = '[arena]'
                c, perm = kind(name, so), f[1]
            elif f[0] == 'Rss:':
                k = int(f[1])
                d[c] = d.get(c, 0) + k
                if c in ('lib', 'libc'):
                    d[c + ':' + perm] = d.get(c + ':' + perm, 0) + k
        rollup = open(f'/proc/{p.pid}/smaps_rollup').read()
        d['total'] = int(re.search(r'^Rss:\s+(\d+)', rollup, re.M).group(1))
        p.send_signal(18)  # SIGCONT
        p.wait()
        res[label].append(d)

keys = ['total', 'heap', 'anon', 'lib', 'lib:r--p', 'lib:r-xp', 'lib:rw-p',
        'libc', 'libc:r-xp', 'libc:r--p', 'ld', 'exe', 'sys']
print('%-10s' % 'median', ' '.join('%9s' % k for k in keys))
for label, _ in libs:
    print('%-10s' % label, ' '.join(
        '%9d' % statistics.median([d.get(k, 0) for d in res[label]]) for k in keys))
for label, _ in libs:
    t = [d['total'] for d in res[label]]
    print(label, 'totals', sorted(t), 'mean %.0f' % statistics.mean(t))
