"""Extensions: each network filter is one record in `registry`, declared
beside the filter (`extensions/network/<filter>.py`)."""
