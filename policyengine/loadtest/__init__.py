"""Performance validation of inference endpoints: an open-loop load generator.

Requests leave at the intended times of a fixed rate (or a ramp) whatever the server does, and each
latency is measured from its *intended* send time, so a stalled server shows in the tail instead of
silently slowing the sender down (coordinated omission). Clients for the KServe V2 / Open Inference
Protocol over REST and gRPC, and for OpenAI-compatible streaming completions, are reusable on their
own (golden-dataset replay builds on them).

Pure parts: `schedule` (send times), `result` (summaries, rendering), `slo` (assessment). The rest
does I/O.
"""
