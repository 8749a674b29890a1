"""policyengine: Git-native release engineering for ML models served on Kubernetes."""

__version__ = "0.1.0"
