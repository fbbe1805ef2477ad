"""The data layer: manifest, importers, exporters, validation, EDA, split, balance."""
