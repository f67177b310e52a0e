"""Sales analytics: popular products and sales statistics projected from order events."""
