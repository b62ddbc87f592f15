"""The API's answers as plain dictionaries, in the shapes ``schemas`` publishes."""

from __future__ import annotations

from typing import Any

from flask import url_for

from comptoir.storefront.inventory import Availability
from comptoir.storefront.models import Article, ArticleVariant, Audience, Shop, Tag
from comptoir.storefront.visibility import ShopView, visible_tag_ids_of


def tag_dict(tag: Tag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.translations("name"), "color": tag.color}


def variant_dict(variant: ArticleVariant) -> dict[str, Any]:
    return {
        "id": variant.id,
        "name": variant.translations("name"),
        "sku": variant.sku,
        "price": variant.price,
        "stock": variant.stock,
    }


def article_dict(article: Article, currency: str) -> dict[str, Any]:
    return {
        "id": article.id,
        "name": article.translations("name"),
        "description": article.translations("description"),
        "price": article.price,
        "currency": currency,
        "tax_category": article.tax_category,
        "sku": article.sku,
        "tag_ids": article.tag_ids,
        "active": article.active,
        "stock": article.stock,
        "max_per_order": article.max_per_order,
        "checkout_form_id": article.checkout_form_id,
        "variants": [variant_dict(v) for v in article.variants],
    }


def shop_dict(shop: Shop) -> dict[str, Any]:
    return {
        "slug": shop.slug,
        "name": shop.translations("name"),
        "intro": shop.translations("intro"),
        "access": shop.access.value,
        "has_password": shop.password_hash is not None,
        "customer_tag_ids": shop.tag_ids_for(Audience.CUSTOMER),
        "staff_tag_ids": shop.tag_ids_for(Audience.STAFF),
        "cart_minutes": shop.cart_minutes,
        "max_cart_renewals": shop.max_cart_renewals,
        "payment_methods": list(shop.payment_methods),
        "default_checkout_form_id": shop.default_checkout_form_id,
        "etransfer": dict(shop.etransfer),
        "communication": dict(shop.communication),
    }


def shop_article_dict(
    view: ShopView, article: Article, availability: Availability, currency: str
) -> dict[str, Any]:
    """An article as this shop shows it to the caller's audience (no SKU, stock or staff tags)."""
    slug = view.shop.slug
    return {
        "id": article.id,
        "name": article.translations("name"),
        "description": article.translations("description"),
        "price": article.price_bounds()[0],
        "currency": currency,
        "tag_ids": visible_tag_ids_of(view, article),
        "available": availability.article(article),
        "max_per_order": article.max_per_order,
        "variants": [
            {
                "id": variant.id,
                "name": variant.translations("name"),
                "price": variant.effective_price,
                "available": availability.variant(variant),
            }
            for variant in article.variants
        ],
        "images": [
            {
                "id": image.id,
                "url": url_for(
                    "storefront_shop.image", shop_slug=slug, image_id=image.id, size="large"
                ),
                "card_url": url_for(
                    "storefront_shop.image", shop_slug=slug, image_id=image.id, size="card"
                ),
                "alt": image.translations("alt"),
            }
            for image in article.images
        ],
    }
