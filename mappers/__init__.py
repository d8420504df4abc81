"""Mappings of cascades onto hardware: loop nests, bindings, the cost model, one `Result`."""
