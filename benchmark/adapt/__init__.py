"""`adapt`: the adaptation curve, the target accuracy after labelling k of one's own photos per
class (docs/adaptation.md)."""
