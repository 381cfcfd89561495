"""The minimal core: config, data pipeline, plugin registry and trainer. It knows no concrete
model, augmentation or featurizer; those arrive through the hooks in
`esc50.core.plugin_api.hookspecs`."""
