"""Billing: metering from the stamps' inventory, prices, burst, rating and invoices."""
