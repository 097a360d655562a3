"""Property-based fuzzing of client-certificate validation (DESIGN.md, hard point 7).

- `edge.fuzz.chains`: `ChainSpec` (a readable description of a chain) -> `Case` (DER anchors,
  leaf and key, intermediates in send order, validation time, the model's expected reason).
- `edge.fuzz.strategies`: Hypothesis strategies over those (needs `hypothesis`).
- `edge.fuzz.oracle`: the edge's verdict against pyca/cryptography's client verifier, the family
  of each disagreement, and saving a disagreement as a reproducible case.
"""
