"""The members' mini-program: member sessions from channel identities, and the member centre's profile."""
