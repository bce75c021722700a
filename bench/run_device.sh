#!/bin/bash
# Runs the decomposition benchmarks side by side, one thread each, on an otherwise idle machine.
export PYTHONPATH=. OMP_NUM_THREADS=1
python -c "import btcore, skimage, sklearn, tensorly; print('deps ok', btcore.__file__)" || pip install -q scikit-image==0.26.0 scikit-learn==1.9.1 tensorly==0.10.0 2>&1 | tail -2
uptime
T=${T:-480}
for p in "camera 256" "coins 256" "camera 512" "astronaut 512"; do
  timeout $T python bench/advisor.py --photo "$p" > "$OUT/advisor_${p// /_}.md" 2>&1 &
done
timeout $T python bench/fairness.py > $OUT/fairness.md 2>&1 &
timeout $T python bench/decompose.py --page > $OUT/page.md 2>&1 &
timeout $T python bench/decompose.py --advise > $OUT/advise.md 2>&1 &
timeout $T python bench/nls.py --quick --hard > $OUT/nls.md 2>&1 &
wait
uptime
tail -n 30 $OUT/*.md
