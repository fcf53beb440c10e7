"""dbplatform's Pulumi program and the pure modules (config, naming, windows) scripts/ share."""
