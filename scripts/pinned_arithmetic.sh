# Pin the floating-point arithmetic so stored notebook outputs reproduce on any x86-64
# machine with AVX2, with or without AVX-512.  Source it, don't run it:
#
#   source scripts/pinned_arithmetic.sh
#
# Used wherever notebooks are executed or compared: scripts/execute_notebooks.sh
# (storing outputs), scripts/test.sh (nbval), scripts/lab.sh (readers see the book's
# numbers).  Why each setting is needed is in docs/AUTHORING.md ("Reproducible outputs").
#
# CNNBOOK_ARITHMETIC=native leaves everything as the machine chooses (for timing).

if [ "${CNNBOOK_ARITHMETIC:-pinned}" != native ]; then
    # OpenBLAS (NumPy's and SciPy's wheels) picks its kernels for the CPU at start-up;
    # different kernels sum in different orders. Haswell (AVX2) kernels run on every
    # x86-64 CPU with AVX2, and are what an AVX2-only machine picks anyway.
    export OPENBLAS_CORETYPE=Haswell
    # Results with 1 and 2 BLAS threads differ: the split of a product changes the order.
    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    # NumPy's own SIMD loops (exp, log, tanh, sums) dispatch at run time among targets
    # such as X86_V3 (AVX2) and X86_V4 (AVX-512); switch off every AVX-512 target this
    # CPU has (NumPy warns about naming one it lacks), so the AVX2 loops run everywhere.
    # The NumPy that reports them is the one that will run (CNNBOOK_PYTHON or python3).
    npy_off=$(PYTHONWARNINGS=ignore "${CNNBOOK_PYTHON:-python3}" - <<'PY'
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
print(" ".join(t for t in m.__cpu_dispatch__
               if ("AVX512" in t or t == "X86_V4") and m.__cpu_features__.get(t)))
PY
    ) || echo "pinned_arithmetic: no NumPy found; its SIMD dispatch is not pinned" >&2
    if [ -n "$npy_off" ]; then
        export NPY_DISABLE_CPU_FEATURES="$npy_off"
    fi
    unset npy_off
    export PYTHONHASHSEED=0
fi
