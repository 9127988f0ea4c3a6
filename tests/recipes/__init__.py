"""Tests of The recipes (egs/*/less/run.sh) and their shell tools (tools/)."""
