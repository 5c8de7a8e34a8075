"""The runtime of emitted modules as ordinary Python: the code that `cpu_runtime` and
`cuda_runtime` copy, as text, into every module the emitters write (see `text`).

- `host`: argument kinds, workspaces, errors and size checks that both targets share;
- `cpu_host`, `cpu_kernels`: the cpu target's host helpers and its hand-written `@njit` kernels;
- `cuda_host`, `cuda_kernels`: the cuda target's, with its `@cuda.jit` kernels;
- `emitted`: stand-ins for what the emitted module defines itself (never copied).
"""
