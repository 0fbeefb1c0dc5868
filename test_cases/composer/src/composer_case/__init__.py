"""The Composer test case: a small causal LM trained by ``composer.Trainer`` (docs/test_cases/composer.md)."""
