//! Tests of the built-in personal-data detectors beyond their catalogue examples.

use crate::redact::builtin::testing::{finds, misses};

#[test]
fn email() {
    finds(
        "email",
        "write to john.doe@example.com.",
        "john.doe@example.com",
    );
    finds(
        "email",
        "<jane+tag@mail.example.co.uk>",
        "jane+tag@mail.example.co.uk",
    );
    finds("email", "ADMIN@EXAMPLE.ORG", "ADMIN@EXAMPLE.ORG");
    misses("email", "icon@2x.png");
    misses("email", "@media screen");
    misses("email", "user@localhost");
    misses("email", "a@b");
}

#[test]
fn phone() {
    for p in [
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "+1 415 555 2671",
        "1-800-555-1234",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "+49 (0)30 12345678",
    ] {
        finds("phone", &format!("call {p} today"), p);
    }
    for not in [
        "2024-01-15",
        "version 1.2.3",
        "$1,234.56",
        "Order #12345678",
        "4111111111111112",
        "1700000000",
        "550e8400-e29b-41d4-a716-446655440000",
        "192.168.100.200",
        "+15.5%",
    ] {
        misses("phone", not);
    }
}

#[test]
fn credit_card() {
    for c in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "378282246310005",
        "3782 822463 10005",
        "5555555555554444",
        "6011000990139424",
    ] {
        finds("credit_card", &format!("card: {c}."), c);
    }
    finds(
        "credit_card",
        "4111 1111 1111 1111 2 times",
        "4111 1111 1111 1111",
    );
    misses("credit_card", "4111 1111 1111 1112");
    misses("credit_card", "1234567812345678");
    misses("credit_card", "order 20240115123456");
    misses("credit_card", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3");
}

#[test]
fn us_ssn() {
    finds("us_ssn", "SSN 123-45-6789.", "123-45-6789");
    finds("us_ssn", "ssn 078 05 1120", "078 05 1120");
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
    ] {
        misses("us_ssn", bad);
    }
    misses("us_ssn", "2024-01-15");
    misses("us_ssn", "123-45-67890");
}

#[test]
fn iban() {
    finds(
        "iban",
        "IBAN DE89 3704 0044 0532 0130 00 please",
        "DE89 3704 0044 0532 0130 00",
    );
    finds("iban", "GB29NWBK60161331926819", "GB29NWBK60161331926819");
    finds(
        "iban",
        "DE89 3704 0044 0532 0130 00 AB12",
        "DE89 3704 0044 0532 0130 00",
    );
    misses("iban", "DE89 3704 0044 0532 0130 01");
    misses("iban", "SKU12345678901234");
}
