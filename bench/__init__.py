"""The benchmark harness behind ``p2p bench`` and the report writer.

* :mod:`bench.timing`      time one callable: warm-up by time, repetitions until a stable median.
* :mod:`bench.stats`       latency percentiles and spread.
* :mod:`bench.memory`      peak host RSS (sampled) and peak GPU memory.
* :mod:`bench.accuracy`    max abs error and PSNR against eager fp32 on the same inputs.
* :mod:`bench.environment` the machine and the software versions a number depends on.
* :mod:`bench.harness`     every backend x precision x batch, side by side, in one run.
* :mod:`bench.e2e`         the whole run pipeline (decode .. encode) with per-stage times.
* :mod:`bench.report`      report.json, report.md, PNG plots and the reports index.
"""
