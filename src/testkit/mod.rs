//! Real local servers and scripted sources for tests, examples and users' own tests.
