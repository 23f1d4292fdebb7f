"""The ledger service: every balance a member holds and every order that moves one."""
