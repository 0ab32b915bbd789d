"""The results document (docs/results-schema.md): its JSON Schema
(`results.schema.json`, also docs/results.schema.json), reading and writing
results.json (`io`), and building the document from a finished run (`build`).

Reports and the GitHub layer read the document only; this package is the one
place that knows how it is stored and checked.
"""
