"""OTLP requests (protobuf and JSON, traces and logs) decoded into Arrow tables of the
store's raw rows: `decode` is the entry point; `wire` and `split` read protobuf at the
wire level; `attributes` (with its optional C accelerator `_speedups`), `values`,
`json_values` and `tables` turn OTLP values into columns."""
