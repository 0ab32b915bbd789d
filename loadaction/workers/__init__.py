"""Local workers (`--workers N`): one plan's load spread over N processes on
this machine, each running one execution segment, merged exactly in the
parent (composition: the engine never imports it)."""
