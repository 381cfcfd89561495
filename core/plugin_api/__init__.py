"""The plugin system: hook specifications, the contracts (base classes) of each kind of
component, the registry that loads and builds plugins, and the checks run on their outputs."""
