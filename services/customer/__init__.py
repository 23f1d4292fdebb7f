"""The customer service: members and business customers, and who the customers are."""
