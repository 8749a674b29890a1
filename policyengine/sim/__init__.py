"""A simulated fleet of model versions that serves traffic by the weights in Git and emits metrics
with the real names and labels of the serving runtimes, for the demo, end-to-end tests and benches.
"""
