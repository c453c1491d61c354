"""Which triton releases build the kernels: `make compat`.

Installs each release side by side outside the venv (``pip install --target``,
kept under ``--dir`` for the next run), runs tools/compile_kernels.py with it
first on the path and a fresh kernel cache, and prints the table docs/kernels.md
shows. Needs the registry once per release (100 to 550 MB each); no GPU.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# triton minor -> the torch releases whose Linux wheels pin it (read from each
# torch wheel's Requires-Dist on PyPI, 2026-12)
TORCH_OF_TRITON = {'2.1': '2.1', '2.2': '2.2', '2.3': '2.3', '3.0': '2.4', '3.1': '2.5',
                   '3.2': '2.6', '3.3': '2.7', '3.4': '2.8', '3.5': '2.9', '3.6': '2.10, 2.11',
                   '3.7': '2.12, 2.13', '3.8': '2.14', '3.9': '2.15'}
RELEASES = ['2.1.0', '2.2.0', '2.3.1', '3.0.0', '3.1.0', '3.2.0', '3.3.1', '3.4.0', '3.5.1',
            '3.6.0', '3.7.1', '3.8.0', '3.9.0']


def install(release: str, root: Path) -> Path:
    target = root / f'triton-{release}'
    if not (target / 'triton' / '__init__.py').exists():
        subprocess.run([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check',
                        '-q', '--no-deps', '--target', str(target), f'triton=={release}'],
                       check=True)
    return target


def check(release: str, root: Path, archs) -> dict:
    path = install(release, root)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
        env.update(PYTHONPATH=os.pathsep.join([str(path), str(ROOT)]),
                   TRITON_CACHE_DIR=os.path.join(tmp, 'cache'))
        out = os.path.join(tmp, 'result.json')
        proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'compile_kernels.py'),
                               '--arch', *map(str, archs), '--json', out], env=env,
                              capture_output=True, text=True)
        if not os.path.exists(out):
            return dict(triton=release, status='error',
                        reason=(proc.stderr or proc.stdout).strip().splitlines()[-1])
        with open(out) as f:
            return json.load(f)


def table(results, archs) -> str:
    """The README's table of ``results`` (one compile_kernels.py result per release)."""
    targets = ', '.join(f'sm_{a}' for a in archs)
    rows = [f'| triton | torch that pins it | losses run | compiled to cubin ({targets}) |',
            '|---|---|---|---|']
    for r in results:
        torch_minor = TORCH_OF_TRITON.get('.'.join(r['triton'].split('.')[:2]), '')
        if r['status'] == 'compiled':
            kernels = r['kernels'][f'sm_{archs[0]}']
            per_target = r.get('seconds_per_target', {})
            seconds = (', '.join(f'{t} {s:.0f} s' for t, s in per_target.items())
                       if per_target else f'{r["seconds"]:.0f} s')
            what = (f'all {len(kernels)} kernels, {sum(kernels.values())} specialisations '
                    f'per target ({seconds})')
        else:
            what = r.get('reason') or '; '.join(f[1] + ': ' + f[2] for f in r['failures'][:3])
        runs = {'compiled': 'kernels', 'torch': 'PyTorch'}.get(r['status'], 'FAILED')
        rows.append(f'| {r["triton"]} | {torch_minor} | {runs} | {what} |')
    return '\n'.join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dir', default=str(Path.home() / '.cache' / 'mmdet-ghm-compat'))
    parser.add_argument('--releases', nargs='+', default=RELEASES)
    parser.add_argument('--arch', type=int, nargs='+', default=[80, 90])
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--results', help='print the table of a stored --json file, '
                        'compiling nothing')
    args = parser.parse_args(argv)
    if args.results:
        with open(args.results) as f:
            results = json.load(f)
        print(table(results, args.arch))
        return 0
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    results = [check(release, root, args.arch) for release in args.releases]
    print('\n' + table(results, args.arch))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0 if all(r['status'] in ('compiled', 'torch') for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
