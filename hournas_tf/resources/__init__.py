"""Resources: analytic counting (`counting`) and per-(layer, op) tables
(`tables`); latency tables plug in as another objective."""
