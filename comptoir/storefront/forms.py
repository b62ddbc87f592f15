"""HTML forms of the catalog and shop admin pages.

Forms parse and shape input (``12,50`` becomes 1250 cents); the services decide what is valid.
:func:`apply_service_error` puts a service's refusal back on the fields it names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import flash
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import ColorField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from comptoir.platform.errors import DomainError
from comptoir.storefront.formatting import price_input
from comptoir.storefront.services import TAX_CATEGORIES, ArticleData, VariantData

_AMOUNT = re.compile(r"^(\d{1,9})(?:[.,](\d{1,2}))?$")


class MoneyField(StringField):
    """A price typed as ``12.50`` or ``12,50`` (dollars), kept as whole cents."""

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        return price_input(self.data) if isinstance(self.data, int) else ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None
        if not valuelist:
            return
        text = str(valuelist[0]).replace("$", "").replace("\u00a0", "").replace(" ", "").strip()
        if not text:
            return
        if text.startswith("-"):
            raise ValueError(_l("A price cannot be negative."))
        match = _AMOUNT.match(text)
        if match is None:
            raise ValueError(_l("Enter an amount such as 12.50."))
        whole, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
        self.data = int(whole) * 100 + int(cents)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class VariantForm(Form):
    id = HiddenField()
    name_fr = StringField(_l("Name (French)"), validators=[Length(max=100)])
    name_en = StringField(_l("Name (English)"), validators=[Length(max=100)])
    sku = StringField(_l("SKU"), validators=[Length(max=64)])
    price = MoneyField(_l("Price (empty: the article's)"))
    stock = IntegerField(_l("Stock (empty: unlimited)"), validators=[Optional()])
    remove = BooleanField(_l("Remove this variant"))

    def is_blank(self) -> bool:
        return (
            not any((self.id.data, self.name_fr.data, self.name_en.data, self.sku.data))
            and self.price.data is None
            and self.stock.data is None
        )


class ArticleForm(FlaskForm):
    name_fr = StringField(_l("Name in French"), validators=[Length(max=200)])
    name_en = StringField(_l("Name in English"), validators=[Length(max=200)])
    description_fr = TextAreaField(_l("Description in French"), validators=[Length(max=20000)])
    description_en = TextAreaField(_l("Description in English"), validators=[Length(max=20000)])
    price = MoneyField(_l("Price before tax"))
    tax_category = SelectField(_l("Tax category"))
    sku = StringField(_l("SKU (stock-keeping unit)"), validators=[Length(max=64)])
    active = BooleanField(_l("Active (not archived)"), default=True)
    stock = IntegerField(_l("Stock (empty: unlimited)"), validators=[Optional()])
    max_per_order = IntegerField(
        _l("Maximum per order (empty: no maximum)"), validators=[Optional()]
    )
    tag_ids = MultiCheckboxField(_l("Tags"), coerce=int)
    checkout_form_id = SelectField(
        _l("Checkout form"), coerce=lambda value: int(value) if str(value).isdigit() else None
    )
    variants = FieldList(FormField(VariantForm), min_entries=0)

    def __init__(self, *args: Any, tags: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tax_category.choices = [
            SelectChoice(code, label) for code, label in TAX_CATEGORIES.items()
        ]
        self.tag_ids.choices = [SelectChoice(tag.id, tag.name) for tag in tags]
        from comptoir.storefront.checkout_forms import list_forms

        self.checkout_form_id.choices = [
            SelectChoice("", _l("None: the shop's default form")),
            *(SelectChoice(form.id, form.name) for form in list_forms()),
        ]

    def variant_rows(self) -> list[tuple[int, VariantForm]]:
        """Rows to save, with their index in the form (blank and removed rows left out)."""
        rows = []
        for index, entry in enumerate(self.variants.entries):
            subform: VariantForm = entry.form
            if subform.remove.data or subform.is_blank():
                continue
            rows.append((index, subform))
        return rows

    def to_data(self, *, keep_variants: bool = False) -> ArticleData:
        variants = [
            VariantData(
                id=int(row.id.data) if str(row.id.data or "").isdigit() else None,
                name_fr=row.name_fr.data or "",
                name_en=row.name_en.data or "",
                sku=row.sku.data or None,
                price=row.price.data,
                stock=row.stock.data,
            )
            for _index, row in self.variant_rows()
        ]
        return ArticleData(
            name_fr=self.name_fr.data or "",
            name_en=self.name_en.data or "",
            description_fr=self.description_fr.data or "",
            description_en=self.description_en.data or "",
            price=self.price.data,
            tax_category=self.tax_category.data or "standard",
            sku=self.sku.data or None,
            active=bool(self.active.data),
            stock=self.stock.data,
            max_per_order=self.max_per_order.data,
            tag_ids=list(self.tag_ids.data or []),
            checkout_form_id=self.checkout_form_id.data,
            variants=None if keep_variants else variants,
        )


BULK_ACTIONS = ("archive", "restore", "add_tag", "remove_tag")


class ImageForm(FlaskForm):
    image = FileField(_l("Image (JPEG, PNG, WebP or GIF, at most 5 MB)"))
    alt_fr = StringField(_l("Description of the image in French"), validators=[Length(max=200)])
    alt_en = StringField(_l("Description of the image in English"), validators=[Length(max=200)])


class TagForm(FlaskForm):
    name_fr = StringField(_l("Name in French"), validators=[Length(max=100)])
    name_en = StringField(_l("Name in English"), validators=[Length(max=100)])
    color = ColorField(_l("Colour"), default="#0b57d0")


ACCESS_LABELS = {
    "public": _l("Public: anyone with the link"),
    "password": _l("Password: customers enter a password once per visit"),
    "staff": _l("Staff only: for counter sales"),
}


class ShopPageForm(FlaskForm):
    name_fr = StringField(_l("Name in French"), validators=[Length(max=200)])
    name_en = StringField(_l("Name in English"), validators=[Length(max=200)])
    slug = StringField(_l("Address"), validators=[Length(max=63)])
    intro_fr = TextAreaField(_l("Introduction in French"), validators=[Length(max=5000)])
    intro_en = TextAreaField(_l("Introduction in English"), validators=[Length(max=5000)])
    access = RadioField(
        _l("Who may open this shop"),
        choices=[SelectChoice(key, label) for key, label in ACCESS_LABELS.items()],
        default="public",
    )
    password = PasswordField(_l("New password"), validators=[Length(max=200)])
    cart_minutes = IntegerField(_l("Cart expiry, in minutes"), default=20, validators=[Optional()])
    max_cart_renewals = IntegerField(
        _l("Renewals allowed per cart"), default=2, validators=[Optional()]
    )


class CategoryAddForm(FlaskForm):
    tag_id = SelectField(_l("Tag"), coerce=int)
    audience = HiddenField()


# Service field names that a form shows on another field.
ARTICLE_FIELD_ALIASES = {"name": "name_fr", "description": "description_fr"}
SHOP_FIELD_ALIASES = {"name": "name_fr", "intro": "intro_fr"}
VARIANT_FIELD_ALIASES = {"name": "name_fr"}


def apply_service_error(
    form: FlaskForm,
    error: DomainError,
    *,
    aliases: Mapping[str, str] | None = None,
    variant_rows: list[tuple[int, VariantForm]] | None = None,
) -> None:
    """Show a service's refusal on the fields it names, else as a flashed message."""
    unplaced: list[str] = []
    aliases = aliases or {}
    for name, messages in error.fields.items():
        target = _field_for(form, aliases.get(name, name), variant_rows)
        if target is None:
            unplaced.extend(messages)
        else:
            target.errors = [*target.errors, *messages]
    if unplaced or not error.fields:
        flash(" ".join(unplaced) or error.message, "error")


def _field_for(
    form: FlaskForm, name: str, variant_rows: list[tuple[int, VariantForm]] | None
) -> Any:
    if name.startswith("variants.") and variant_rows is not None:
        _prefix, index, field_name = [*name.split(".", 2), "", ""][:3]
        if not index.isdigit() or int(index) >= len(variant_rows):
            return None
        row = variant_rows[int(index)][1]
        return _field_or_none(row, VARIANT_FIELD_ALIASES.get(field_name, field_name)) or row.name_fr
    return _field_or_none(form, name)


def _field_or_none(form: Any, name: str) -> Any:
    try:
        return form[name]
    except KeyError:
        return None
