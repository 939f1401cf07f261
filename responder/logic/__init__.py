"""Pure decisions: normalizing, deduplicating, routing, planning, guarding. No I/O, no clock, no env."""
