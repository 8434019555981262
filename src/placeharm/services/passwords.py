"""Password rules for local accounts: length, the username, and a deny-list of guessable
passwords (zxcvbn's dictionaries of common passwords, words, names and patterns).

Demo accounts (`placeharm demo`) are created without these rules, explicitly and only for
accounts flagged demo, which are refused as soon as a store holds a force's own records.
"""

from __future__ import annotations

import re

from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # (no type stubs published)

from placeharm.errors import DataError

MIN_LENGTH = 12
# argon2 hashes any length, but a longer password only costs the server time to check
MAX_LENGTH = 256
# zxcvbn's score: 0-2 fall to an online or offline guessing attack on common passwords,
# words and patterns; 3 is "safely unguessable" against an online attack with throttling
MIN_SCORE = 3
# the username blocks a password containing it once it is this long (shorter names are
# still zxcvbn user inputs, so "jo" + a common word is refused as guessable)
_NAME_MIN = 3
_ADVICE = (
    "Use three or four unrelated words, or a password manager's random password, "
    "with nothing to do with the account."
)


def check_password_rules(password: str, username: str, display_name: str = "") -> None:
    """Raise DataError saying why `password` is refused for this account and what to do."""
    if len(password) < MIN_LENGTH:
        raise DataError(
            f"the password is too short: a password needs at least {MIN_LENGTH} characters. "
            + _ADVICE
        )
    if len(password) > MAX_LENGTH:
        raise DataError(f"the password is too long: at most {MAX_LENGTH} characters")
    folded = password.casefold()
    name = username.casefold()
    if len(name) >= _NAME_MIN and name in folded:
        raise DataError(
            "the password contains the username, which anyone guessing tries first. " + _ADVICE
        )
    whole_name = re.sub(r"[\W_]+", "", display_name.casefold())
    if len(whole_name) > _NAME_MIN and whole_name in re.sub(r"[\W_]+", "", folded):
        raise DataError(
            "the password contains the account's display name, which anyone guessing tries. "
            + _ADVICE
        )
    inputs = [username, display_name, *re.split(r"[\W_]+", display_name)]
    result = zxcvbn(password, user_inputs=[i for i in inputs if i])
    if result["score"] < MIN_SCORE:
        feedback = result["feedback"]
        why = feedback.get("warning") or "it is made of common words, names or patterns"
        why = why[:1].lower() + why[1:]
        hints = " ".join(feedback.get("suggestions") or [])
        raise DataError(
            f"the password is too easy to guess ({why.rstrip('.')}; strength "
            f"{result['score']} of 4, at least {MIN_SCORE} needed). "
            + (f"{hints} " if hints else "")
            + _ADVICE
        )
