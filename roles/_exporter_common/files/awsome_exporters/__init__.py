"""Prometheus exporters of awsome.distributed_training: one package, one module per exporter.

Run one with `python3 -m awsome_exporters.<efa|slurm|gpu> --listen ADDR:PORT`; `--once` prints one
scrape to stdout instead of serving. Every exporter reads its source on each scrape (no cache), so a
scrape shows the node as it is now.
"""
