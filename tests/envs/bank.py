"""A small bank, written the way users write environments: every method returns a plain `dict`.

Customers log in with a username and PIN held in a `{username: pin}` mapping that changes with
every seed (no static ARGUMENT_EXAMPLES can help), then list, show, open, rename, fund and move
money between their accounts. Ids are named in parameter descriptions ("as listed by
list_accounts", "returned by transfer"). Used by tests/test_user_shapes.py (issue 12).
"""

from __future__ import annotations

import random


class BankError(Exception):
    """A refused request."""


class Bank:
    def __init__(self) -> None:
        self.users: dict[str, str] = {}  # username -> PIN
        self.accounts: dict[str, dict] = {}
        self.transfers: dict[str, dict] = {}
        self.session: str | None = None
        self.opened = 0
        self.sent = 0

    def load_scenario(self, scenario: dict) -> None:
        self.users = dict(scenario["users"])
        self.accounts = {a["account_id"]: dict(a) for a in scenario["accounts"]}

    def _customer(self) -> str:
        if self.session is None:
            raise BankError("not logged in")
        return self.session

    def _own(self, account_id: str) -> dict:
        account = self.accounts.get(account_id)
        if account is None or account["owner"] != self._customer():
            raise BankError(f"no account {account_id}")
        return account

    def login(self, username: str, pin: str) -> dict:
        """Log a customer in.

        Args:
            username: The customer's username.
            pin: The customer's PIN.
        """
        if self.users.get(username) != pin:
            raise BankError("invalid credentials")
        self.session = username
        return {"logged_in": True, "username": username}

    def logout(self) -> dict:
        """Log the current customer out."""
        self._customer()
        self.session = None
        return {"logged_in": False}

    def list_accounts(self) -> dict:
        """List the logged-in customer's accounts."""
        me = self._customer()
        return {"accounts": [{"account_id": a["account_id"], "nickname": a["nickname"]}
                             for a in self.accounts.values() if a["owner"] == me]}

    def get_account(self, account_id: str) -> dict:
        """Show one account with its balance.

        Args:
            account_id: The account id as listed by list_accounts.
        """
        return dict(self._own(account_id))

    def open_account(self, nickname: str) -> dict:
        """Open a new, empty account for the logged-in customer.

        Args:
            nickname: A name for the account.
        """
        me = self._customer()
        self.opened += 1
        account = {"account_id": f"AC-{900 + self.opened}", "owner": me, "nickname": nickname, "balance": 0.0}
        self.accounts[account["account_id"]] = account
        return dict(account)

    def rename_account(self, account_id: str, nickname: str) -> dict:
        """Give an account a new nickname.

        Args:
            account_id: The account id as listed by list_accounts.
            nickname: The new name.
        """
        account = self._own(account_id)
        account["nickname"] = nickname
        return dict(account)

    def deposit(self, account_id: str, amount: float) -> dict:
        """Pay cash into an account.

        Args:
            account_id: The account id as listed by list_accounts.
            amount: How much, between 1 and 500.
        """
        account = self._own(account_id)
        if not 1 <= amount <= 500:
            raise BankError("amount must be between 1 and 500")
        account["balance"] = round(account["balance"] + amount, 2)
        return {"account_id": account_id, "balance": account["balance"]}

    def transfer(self, from_account: str, to_account: str, amount: float) -> dict:
        """Move money between two of the customer's accounts.

        Args:
            from_account: The account to take the money from, as listed by list_accounts.
            to_account: The account to pay into, as listed by list_accounts.
            amount: How much, between 1 and 100.
        """
        source, target = self._own(from_account), self._own(to_account)
        if from_account == to_account:
            raise BankError("the two accounts must differ")
        if not 1 <= amount <= 100 or amount > source["balance"]:
            raise BankError("amount must be between 1 and 100 and within the balance")
        source["balance"] = round(source["balance"] - amount, 2)
        target["balance"] = round(target["balance"] + amount, 2)
        self.sent += 1
        record = {"transfer_id": f"TR-{self.sent:03d}", "from_account": from_account,
                  "to_account": to_account, "amount": amount}
        self.transfers[record["transfer_id"]] = record
        return dict(record)

    def get_transfer(self, transfer_id: str) -> dict:
        """Show a transfer.

        Args:
            transfer_id: The id returned by transfer.
        """
        self._customer()
        record = self.transfers.get(transfer_id)
        if record is None:
            raise BankError(f"no transfer {transfer_id}")
        return dict(record)


def generate_scenario(seed: int) -> dict:
    """Two customers with their own PINs and accounts; names and PINs change with the seed."""
    rng = random.Random(seed)
    names = rng.sample(["ana", "bo", "cyd", "dee", "eli", "fay", "gus", "hal"], 2)
    users = {n: f"{rng.randint(0, 9999):04d}" for n in names}
    accounts = []
    for n in names:
        for k in range(2):
            accounts.append({"account_id": f"AC-{rng.randint(100, 899)}{k}", "owner": n,
                             "nickname": rng.choice(["daily", "savings", "travel", "bills"]),
                             "balance": float(rng.randint(50, 400))})
    return {"users": users, "accounts": accounts}
