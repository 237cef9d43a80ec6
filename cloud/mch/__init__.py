"""Maternal-and-child-health records: screening cases, child growth checks, prenatal visits."""
