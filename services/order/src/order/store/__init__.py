"""The order service's persistence: every statement on `orders` and `order_history`.

`rows` reads orders, `sagas` saves moved sagas (rows, history, NOTIFYs and messages together),
`leases` hands provider steps to the payment worker and overdue steps to the deadline scan.
Functions take the caller's transaction; use cases (service.py) open them.
"""
