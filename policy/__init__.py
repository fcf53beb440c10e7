"""The dbplatform CrossGuard policy pack: a thin adapter over the guardrail catalogue."""
