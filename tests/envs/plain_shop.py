"""An online shop. Written as an app developer would: plain methods, strings and dicts back."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class Shipping(Enum):
    STANDARD = "standard"
    EXPRESS = "express"


@dataclass
class Product:
    sku: str
    name: str
    price: float
    stock: int


class Shop:
    def __init__(self):
        self.products: dict[str, Product] = {}
        self.accounts: dict[str, str] = {}   # email -> password
        self.current_user: Optional[str] = None
        self.cart: dict[str, int] = {}
        self.orders: dict[int, dict] = {}
        self.next_order = 1000
        self.balance: dict[str, float] = {}

    def load_scenario(self, scenario):
        self.products = {p["sku"]: Product(**p) for p in scenario["products"]}
        self.accounts = dict(scenario["accounts"])
        self.balance = {e: 500.0 for e in self.accounts}

    def login(self, email: str, password: str) -> str:
        """Log into the shop."""
        if self.accounts.get(email) != password:
            raise ValueError("wrong email or password")
        self.current_user = email
        return f"Welcome back {email}"

    def search(self, keyword: str) -> list[dict]:
        """Search products by keyword; returns matching products."""
        return [{"sku": p.sku, "name": p.name, "price": p.price} for p in self.products.values()
                if keyword.lower() in p.name.lower()]

    def add_to_cart(self, sku: str, quantity: int = 1) -> dict:
        """Put a product in the cart."""
        if self.current_user is None:
            raise PermissionError("please log in first")
        p = self.products.get(sku)
        if p is None:
            raise KeyError(f"no such product {sku}")
        if quantity < 1 or quantity > p.stock:
            raise ValueError("not enough stock")
        self.cart[sku] = self.cart.get(sku, 0) + quantity
        return {"cart": dict(self.cart), "items": sum(self.cart.values())}

    def view_cart(self) -> dict:
        """Show the cart and its total."""
        total = sum(self.products[s].price * q for s, q in self.cart.items())
        return {"cart": dict(self.cart), "total": round(total, 2)}

    def checkout(self, shipping: Shipping = Shipping.STANDARD) -> dict:
        """Pay for the cart and create an order."""
        if self.current_user is None:
            raise PermissionError("please log in first")
        if not self.cart:
            raise ValueError("cart is empty")
        total = sum(self.products[s].price * q for s, q in self.cart.items())
        total += 15.0 if shipping == Shipping.EXPRESS else 0.0
        if total > self.balance[self.current_user]:
            raise ValueError("insufficient funds")
        self.balance[self.current_user] -= total
        for s, q in self.cart.items():
            self.products[s].stock -= q
        oid = self.next_order
        self.next_order += 1
        self.orders[oid] = {"items": dict(self.cart), "total": round(total, 2), "status": "paid",
                            "user": self.current_user}
        self.cart = {}
        return {"order_id": oid, "total": round(total, 2)}

    def order_status(self, order_id: int) -> str:
        """Status of an order."""
        o = self.orders.get(order_id)
        if o is None or o["user"] != self.current_user:
            raise KeyError("order not found")
        return o["status"]

    def cancel_order(self, order_id: int) -> str:
        """Cancel a paid order and refund it."""
        o = self.orders.get(order_id)
        if o is None or o["user"] != self.current_user:
            raise KeyError("order not found")
        if o["status"] != "paid":
            raise ValueError("cannot cancel")
        o["status"] = "cancelled"
        self.balance[self.current_user] += o["total"]
        for s, q in o["items"].items():
            self.products[s].stock += q
        return "cancelled"

    def logout(self) -> None:
        """Log out."""
        self.current_user = None


def scenarios(seed: int) -> dict:
    rng = random.Random(seed)
    names = ["Red Mug", "Blue Mug", "Desk Lamp", "Notebook", "Pen Set", "Backpack", "Water Bottle"]
    products = [{"sku": f"SKU{rng.randint(100, 999)}{i}", "name": n, "price": round(rng.uniform(3, 60), 2),
                 "stock": rng.randint(0, 5)} for i, n in enumerate(names)]
    accounts = {f"{u}@mail.com": f"pw{rng.randint(1000, 9999)}" for u in rng.sample(["ann", "bob", "cy"], 2)}
    return {"products": products, "accounts": accounts}
